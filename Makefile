# Two commands for a fresh machine: `make demo` and `make test` (the full suite, what CI runs);
# `make test-fast` skips the tests marked slow, for the edit loop; `make test` lists its 25
# slowest tests at the end (the suite should stay well under 15 minutes on 2 cores).
# Both run the test files in JOBS pytest-xdist workers (one file stays in one worker, so a module's
# fixtures are built once); `make test JOBS=0` runs them in this process, one after another.
VENV ?= .venv
JOBS ?= 2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint install docs

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[rl,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/reweight-gym demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile --durations=25 tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The documentation (Sphinx + MyST, docs/): warnings are errors, then docs/check_site.py checks
# the built pages (CI runs this after `make test`). Installs the docs extra first.
DOCS_STAMP := $(VENV)/.docs-stamp

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	$(PY) docs/check_site.py docs/_build/html
