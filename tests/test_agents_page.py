"""Every snippet of the docs' agents page, section "Training agents" (``docs/agents.md``),
extracted and executed as written
(tiny preset, few episodes), in order, in one working directory. The only substitutions:
``path/to/cifar10`` is the JPEG CIFAR-10 copy of the tests, and the cluster's ``ray start``
commands get the ports and temp dirs a second node on the *same* machine needs
(``procs.TwoNodeCluster``)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from procs import RAY_ENV, TwoNodeCluster

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

PAGE = Path(__file__).resolve().parents[1] / "docs" / "agents.md"
SECTION = "## Training agents"


def snippets() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the section, in order."""
    text = PAGE.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    body = text[start:end if end >= 0 else None]
    return re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S)


BLOCKS = snippets()
# what each block is: a new snippet without a test here fails test_every_snippet_is_tested
ROLES = ["cli", "transfer", "sb3", "rllib", "tune", "evaluate", "cluster"]


def test_every_snippet_is_tested() -> None:
    assert len(BLOCKS) == len(ROLES), [code.splitlines()[0] for _, code in BLOCKS]
    assert [lang for lang, _ in BLOCKS] == ["bash", "bash", "python", "python", "python",
                                            "python", "bash"]


def block(role: str) -> str:
    return BLOCKS[ROLES.index(role)][1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _env() -> dict[str, str]:
    env = dict(RAY_ENV)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run(lang: str, code: str, cwd: Path) -> str:
    """Run a block as a user would: bash lines in a shell, Python as a script file."""
    if lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = cwd / "snippet.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    res = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{code}\n---\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_command_line(workdir: Path) -> None:
    out = run("bash", block("cli"), workdir)
    assert "trained sb3 ddpg: 8 episodes (32 env steps)" in out
    assert "trained rllib ddpg: 8 episodes" in out
    # both agents learned: a real (small) agent, not the random exploration
    assert all(int(n) > 0 for n in re.findall(r"trained .*, (\d+) gradient updates", out))
    assert out.count("\nmean return") == 2  # the agent and easy_first, on the same episodes
    assert (workdir / "runs" / "sb3" / "tb").is_dir()


def test_transfer_to_cifar(workdir: Path, cifar_root: str) -> None:
    out = run("bash", block("transfer").replace("path/to/cifar10", cifar_root), workdir)
    assert "episode 0: return" in out


def test_sb3_python(workdir: Path) -> None:
    out = run("python", block("sb3"), workdir).split()
    assert out[-5:] == ["3", "4", "1e-05", "0.0001", "1"]
    assert (workdir / "runs" / "sb3-python" / "law_ddpg_16_steps.zip").exists()


def test_rllib_python(workdir: Path) -> None:
    last = run("python", block("rllib"), workdir).split()
    assert last[-1] == "2"  # FDU updates after rounds 2 and 3
    assert (workdir / "runs" / "rllib-python").is_dir()


def test_tune_search(workdir: Path) -> None:
    actor_lr, fdu_epochs = run("python", block("tune"), workdir).split()[-2:]
    assert float(actor_lr) in (1e-5, 1e-4) and int(fdu_epochs) in (2, 4)


def test_evaluate_python(workdir: Path) -> None:
    out = run("python", block("evaluate"), workdir)
    assert "mean_return" in out


def test_cluster(workdir: Path) -> None:
    lines = [ln for ln in block("cluster").replace("\\\n", " ").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    head, worker, train = (shlex.split(ln) for ln in lines)
    assert head[:3] == ["ray", "start", "--head"] and worker[:3] == ["ray", "start", "--address"]
    assert train[:2] == ["reweight-gym", "train"]
    cluster = TwoNodeCluster(tuple(head[2:]), tuple(worker[2:]))
    try:
        out = run("bash", shlex.join(cluster.resolve(train)), workdir)
    finally:
        cluster.stop()
    assert "trained rllib ddpg: 4 episodes" in out
