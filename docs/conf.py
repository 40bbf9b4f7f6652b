"""Sphinx configuration of the reweight-gym documentation (MyST Markdown, furo theme).

Build with ``make docs`` (``sphinx-build -W --keep-going docs docs/_build/html``). Pages under
``_generated/`` are written by :mod:`_gen` when the build starts, from the code (the
configuration reference, the command-line help) and from the stored results under
``benchmarks/results/`` (never typed by hand).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))

import _gen  # noqa: E402

import reweight_gym  # noqa: E402

project = "reweight-gym"
author = "the reweight-gym authors"
copyright = "2026, the reweight-gym authors"
release = version = reweight_gym.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
# MathJax served from the site itself (the docs extra installs it), so the equations render
# without a network; without the package MathJax comes from its CDN.
try:
    importlib.import_module("sphinx-mathjax-offline")
    extensions.append("sphinx-mathjax-offline")
except ImportError:
    pass
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/*.inc.md", "README.md"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
# Re-exported names are documented where they are defined (the package pages list them).
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True,
                           "ignore-module-all": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# The RL libraries are optional extras (``sb3``, ``rllib``): mocked only where not installed, so
# that ``pip install -e ".[docs]"`` alone builds the API pages.
autodoc_mock_imports = [m for m in ("stable_baselines3", "ray", "tensorboard")
                        if importlib.util.find_spec(m) is None]
# Methods that override a library's (RLlib's, SB3's) without a docstring of their own are not
# given the library's docstring, which is written for the library's own Sphinx extensions.
autodoc_inherit_docstrings = False
# The package's docstrings are written for readers of the source (plain text with ``literals``,
# equations as text, Markdown-like headings in ReweightEnv's), not as reStructuredText: their
# markup slips are not errors of this site, and neither is a short name (``EnvConfig``) that two
# modules export (the package re-exports its names). The pages' own warnings stay errors.
nitpicky = False
suppress_warnings = [
    "docutils",
    "ref.python",
    "myst.header",  # stored reports are included as they are written
]

html_theme = "furo"
html_title = f"reweight-gym {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False

# Generated before Sphinx looks for the source files.
_gen.generate_all(ROOT, DOCS / "_generated")


def _markdown_headings(app, what, name, obj, options, lines: list[str]) -> None:  # noqa: ANN001
    """Docstrings written Gymnasium-style (``## Description`` ...) get their headings as rubrics
    (reStructuredText has no ``##`` headings; the docstrings themselves stay as they are)."""
    out: list[str] = []
    for line in lines:
        m = re.match(r"^(\s*)#{1,4} (\S.*)$", line)
        if m:
            out += [f"{m.group(1)}.. rubric:: {m.group(2)}", ""]
        else:
            out.append(line)
    lines[:] = out


def setup(app) -> None:  # noqa: ANN001 - sphinx.application.Sphinx
    app.connect("autodoc-process-docstring", _markdown_headings)
