"""The measurement scripts' own argument parsing (the package ``benchmarks``, run from the
repository root as ``python -m benchmarks.<name>``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def test_agent_learning_baseline_entries_name_their_options():
    spec = _load("agent_learning").baseline_spec
    demo = {"mwnet": {"meta_lr": 1e-4}}
    assert spec("mwnet", demo) == ("mwnet", {"meta_lr": 1e-4})  # the demo's options
    assert spec("gdw", demo) == ("gdw", None)
    assert spec("mwnet:defaults", demo) == ("mwnet", None)  # the package's defaults
    assert spec("mwnet:meta_lr=0.001", demo) == ("mwnet", {"meta_lr": 0.001})
    assert spec("mwnet:meta_lr=paper+jvp=forward_ad", demo) == (
        "mwnet", {"meta_lr": "paper", "jvp": "forward_ad"})
    with pytest.raises(SystemExit, match="key=value"):
        spec("mwnet:meta_lr", demo)


def test_agent_learning_select_refuses_unknown_candidates(tmp_path):
    module = _load("agent_learning")
    with pytest.raises(SystemExit, match=r"unknown --candidates \['nope'\]: allowed: law, "):
        module.main(["--steps", "select", "--candidates", "defaults,nope", "--out",
                     str(tmp_path)])
    assert not (tmp_path / "selection").exists()  # refused before training anything


def test_agent_learning_candidates_need_the_select_step(tmp_path, capsys):
    module = _load("agent_learning")
    with pytest.raises(SystemExit):
        module.main(["--steps", "report", "--candidates", "law", "--out", str(tmp_path)])
    assert "--candidates law needs the select step" in capsys.readouterr().err


@pytest.mark.slow
def test_agent_learning_select_plays_candidates_on_validation_episodes_only(tmp_path,
                                                                             monkeypatch):
    """The select step trains each candidate (through ``reweight-gym train``, resumable) and
    plays it on the protocol's validation episodes, never on the evaluation ones."""
    from reweight_gym.agents.protocol import EVALUATION_SEEDS, VALIDATION_SEEDS

    module = _load("agent_learning")
    # the episodes are played in worker processes, which import the script's module
    monkeypatch.syspath_prepend(str(ROOT))
    quick = ["--agent-kwargs", '{"learning_starts_episodes": 1}']  # 2 episodes must learn
    monkeypatch.setattr(module, "CANDIDATES", {"law": ["--settings", "law", *quick],
                                               "defaults": quick})
    monkeypatch.setattr("reweight_gym.agents.protocol.VALIDATION_SEEDS", VALIDATION_SEEDS[:1])
    argv = ["--steps", "select", "--episodes", "2", "--select-seeds", "0", "--workers", "1",
            "--env-kwargs", '{"epochs": 2, "num_stages": 2, "train_size": 200}',
            "--out", str(tmp_path)]
    assert module.main(argv) == 0
    rows = module._load_rows(str(tmp_path))
    assert {r["method"] for r in rows} == {"select:law_s0", "select:defaults_s0"}
    assert {r["reset_seed"] for r in rows} == set(VALIDATION_SEEDS[:1])
    assert not {r["reset_seed"] for r in rows} & set(EVALUATION_SEEDS)
    assert {r["set"] for r in rows} == {"validation"} and {r["group"] for r in rows} == {"select"}
    for name in ("law_s0", "defaults_s0"):  # the training directories record their settings
        assert (tmp_path / "selection" / name / "agent.json").exists()
    text = (tmp_path / "selection.md").read_text()
    assert "| law | `--settings law --agent-kwargs" in text
    assert "| defaults | `--agent-kwargs" in text
    assert "Best by mean validation return" in text
    # a fresh clone has the rows but no checkpoints (*.zip are git-ignored): a rerun neither
    # retrains nor replays what is stored
    for z in (tmp_path / "selection").rglob("*.zip"):
        z.unlink()
    assert module.main(argv) == 0
    assert module._load_rows(str(tmp_path)) == rows
    assert not list((tmp_path / "selection").rglob("*.zip"))
    # rows of another training length are not mixed in
    with pytest.raises(SystemExit, match=r"select:law_s0 trained for \[2\] episodes, not "
                                         r"--episodes 3: use another --out"):
        module.main([a if a != "2" else "3" for a in argv])
    assert module.main(argv) == 0  # a rerun resumes: nothing played twice
    assert len(module._load_rows(str(tmp_path))) == len(rows)


def test_agent_learning_train_step_forwards_agent_kwargs(tmp_path, monkeypatch):
    """``--agent-kwargs`` reaches ``reweight-gym train`` of every agent (a select candidate put
    through the whole protocol); without it the defaults are trained."""
    module = _load("agent_learning")
    calls = []
    monkeypatch.setattr(module, "_train_agent",
                        lambda name, lib, seed, d, episodes, cfg, extra=None:
                        calls.append((name, extra)))
    module.main(["--steps", "train", "--libs", "sb3,rllib", "--train-seeds", "0",
                 "--agent-kwargs", '{"fdu_epochs": 4}', "--out", str(tmp_path)])
    assert calls == [(n, ["--agent-kwargs", '{"fdu_epochs": 4}']) for n in ("sb3_s0", "rllib_s0")]
    calls.clear()
    module.main(["--steps", "train", "--libs", "sb3", "--train-seeds", "1", "--out",
                 str(tmp_path)])
    assert calls == [("sb3_s1", None)]


@pytest.mark.slow
def test_transfer_protocol_end_to_end_on_tiny_sets(tmp_path):
    """The issue-25 protocol on tiny digits instance sets: select (train + validation
    ranking), train (SB3, 3 seeds), the constant search, evaluate (fit of every agent and the
    constant, uniform and MW-Net) and the report with its goals, resumable."""
    import json

    module = _load("transfer")
    base = {"preset": "tiny", "epochs": 2, "num_stages": 2, "train_size": 200,
            "test_size": 100, "obs_mode": "transfer"}
    sets = {}
    for name, seeds, noise in (("train", 2, (0.4, 0.0)), ("validation", [50], (0.3,)),
                               ("heldout", [0, 1], (0.4, 0.0))):
        spec = {"name": name, "defaults": {**base, "episode_seeds": seeds},
                "instances": [{"name": f"{name}-{r}", "noise_rate": r} for r in noise]}
        sets[name] = str(tmp_path / f"{name}.json")
        (tmp_path / f"{name}.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    argv = ["--episodes", "4", "--libs", "sb3", "--candidates", "defaults",
            "--agent-kwargs", '{"learning_starts_episodes": 2}',
            "--methods", "uniform,constant,sb3,mwnet", "--train-set", sets["train"],
            "--validation-set", sets["validation"], "--heldout-set", sets["heldout"],
            "--out", str(out)]
    assert module.main(argv) == 0
    assert json.loads((out / "selection.json").read_text())["chosen"] == "defaults"
    assert sorted(p.name for p in (out / "agents").iterdir()) == ["sb3_s0", "sb3_s1", "sb3_s2"]
    rows = [json.loads(x) for x in (out / "heldout.jsonl").read_text().splitlines()]
    # 2 instances x 2 seeds for uniform, the constant and MW-Net; x 3 training seeds for SB3
    assert len(rows) == 4 * 3 + 4 * 3
    agent_rows = [r for r in rows if r["tags"]["method"].startswith("sb3")]
    assert all(r["stage_rewards"] is None and r["stage_actions"] for r in agent_rows)
    report = (out / "report.md").read_text()
    assert "## heldout-0.4" in report and "## Goals" in report and "sb3" in report
    assert (out / "stages.png").is_file()
    trained = [json.loads(x) for x in (out / "training.jsonl").read_text().splitlines()]
    assert [(r["agent"], r["lib"], r["seed"], r["episodes"]) for r in trained] == [
        ("selection/defaults", "sb3", 0, 4), ("agents/sb3_s0", "sb3", 0, 4),
        ("agents/sb3_s1", "sb3", 1, 4), ("agents/sb3_s2", "sb3", 2, 4)]
    assert all(r["gradient_updates"] > 0 and r["seconds"] > 0 for r in trained)
    assert "## Training the agents" in report
    assert "trained sb3 ddpg" in (out / "logs" / "sb3_s0.log").read_text()
    n = len(rows)
    assert module.main(argv[:-1] + [str(out)]) == 0  # a rerun runs nothing again
    assert len((out / "heldout.jsonl").read_text().splitlines()) == n


def test_preset_warmup_share_is_the_second_reset_of_a_cached_episode() -> None:
    from benchmarks.presets import warmup_table

    old = {"label": "cifar10 proxy", "steps": 9, "cpu_seconds_cached_reference": 7.0}
    new = {**old, "reset_cpu_seconds_cached_reference": 2.0,  # data built + warm-up
           "rereset_cpu_seconds_cached_reference": 1.0}  # warm-up only
    table = warmup_table([new, old])  # rows without the measurement are left out
    # the episode as a training env runs it: 7 - 2 + 1 = 6 s, of which 1 s warm-up
    assert "| cifar10 proxy | 9 | 1.00 | 6.00 | 16.7% | 1.20x |" in table
    assert "digits" not in table


def test_preset_cost_ratios_compare_rows_of_one_run_only() -> None:
    from benchmarks.presets import cost_table

    def row(label: str, seconds: float, run: str) -> dict:
        return {"label": label, "steps": 9, "seconds": seconds,
                "seconds_cached_reference": seconds / 2, "run": run}

    rows = [row("cifar10 cpu-noaug", 800.0, "a"), row("cifar10 proxy", 40.0, "a")]
    table = cost_table(rows)
    assert "| cifar10 proxy | 9 | 40.0 | – | 1/20.0 | 20.0 | – | 2.00x |" in table
    assert "| cifar10 cpu-noaug | 9 | 800.0 | – | 1 |" in table
    # a later row without a baseline in its run does not hide the one with a ratio ...
    later = cost_table([*rows, row("cifar10 proxy", 30.0, "b")])
    assert "| cifar10 proxy | 9 | 40.0 | – | 1/20.0 |" in later
    # ... but the newest row with a baseline of its own run does
    newer = [*rows, row("cifar10 proxy", 30.0, "b"), row("cifar10 cpu-noaug", 900.0, "c"),
             row("cifar10 proxy", 45.0, "c")]
    assert "| cifar10 proxy | 9 | 45.0 | – | 1/20.0 |" in cost_table(newer)
    assert "| cifar10 proxy | 9 | 30.0 | – | – |" in cost_table([row("cifar10 proxy", 30.0, "b")])
    # with CPU times, the ratio compares them (the wall time of a loaded machine is longer)
    timed = [{**r, "cpu_seconds": r["seconds"] / 2, "cpu_seconds_cached_reference": 1.0}
             for r in rows]
    timed[1]["cpu_seconds"] = 10.0
    assert "| cifar10 proxy | 9 | 40.0 | 10.0 | 1/40.0 | 20.0 | 1.0 | 10.00x |" in cost_table(
        timed)


def test_heldout_seeds_pairs_each_seed_with_its_uniform_run(tmp_path) -> None:
    import json

    from benchmarks.heldout_seeds import setting_table
    from reweight_gym.runner import RunSpec

    def row(method: str, seed: int, final: float) -> str:
        spec = RunSpec("digits", "uniform-noise", {"noise_rate": 0.4}, method, seed, "tiny")
        return json.dumps({"key": spec.key, "spec": spec.to_dict(), "final_test_acc": final,
                           "test_acc_at_best_val": final + 0.01})

    uniform = [0.50, 0.52, 0.54, 0.40, 0.42, 0.44]
    gains = {"gdw": [0.02, 0.04, 0.06, 0.01, 0.01, -0.01], "nrt": [0.01, 0.01, 0.01]}
    lines = [row("uniform", s, a) for s, a in enumerate(uniform)]
    lines += [row(m, s, uniform[s] + g) for m, gs in gains.items() for s, g in enumerate(gs)]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    table, missing = setting_table(tmp_path, {"uniform", "gdw", "nrt", "mwnet"})
    assert missing == ["mwnet", "nrt"]  # not run at all / no held-out seeds
    assert "| nrt | +1.00 ± 0.00 (3/3) | not run yet (0 of 3) | – |" in table
    assert "| mwnet | – | not run yet (0 of 3) |" in table
    # seeds 0-2: +4.00 ± 2.00, all above; held-out 3-5: +0.33 ± 1.15, 2 of 3; moved -3.67
    assert "| gdw | +4.00 ± 2.00 (3/3) | +0.33 ± 1.15 (2/3) | -3.67 | +2.17 ± 2.48 (5/6," in table
    assert "| 41.00 / 43.00 / 43.00 |" in table
    assert "seeds 3-5: 40.00 / 42.00 / 44.00 %" in table


def test_reused_rows_are_copied_once_and_not_run_again(tmp_path) -> None:
    from benchmarks.common import JsonlLog, reuse_rows, run_specs
    from reweight_gym.benchmark.store import ResultsStore
    from reweight_gym.runner import RunSpec, run

    noise = {"noise_type": "uniform", "noise_rate": 0.4}
    stored = run(RunSpec("digits", "uniform-noise", noise, "uniform", 0, "tiny"))  # a benchmark row
    (tmp_path / "bench").mkdir()
    ResultsStore(tmp_path / "bench" / "results.jsonl").append(stored)
    same = RunSpec("digits", "custom", {}, "uniform", 0, "tiny", env_overrides=noise)
    jobs = [({"setting": "uniform"}, same),
            ({"setting": "uniform"}, RunSpec("digits", "custom", {}, "uniform", 1, "tiny",
                                             env_overrides=noise)),  # another seed
            ({"setting": "gdw"}, RunSpec("digits", "custom", {}, "gdw", 0, "tiny",
                                         env_overrides=noise))]  # not a reusable method here
    log = JsonlLog(tmp_path / "log.jsonl")
    assert reuse_rows(log, jobs, [tmp_path / "bench"], ["uniform"]) == 1
    assert reuse_rows(log, jobs, [tmp_path / "bench"], ["uniform"]) == 0  # copied once
    row = log.rows()[0]
    assert row["tags"] == {"setting": "uniform", "copied_from": stored.key}
    assert row["key"] == same.key and row["final_test_acc"] == stored.final_test_acc
    results = run_specs(log, jobs[:1])  # the copied job is not run again
    assert len(log.rows()) == 1 and results[0].final_test_acc == stored.final_test_acc


def test_rows_stored_before_a_config_field_existed_are_reused_at_its_default(tmp_path) -> None:
    import json

    from benchmarks.common import JsonlLog, reuse_rows
    from reweight_gym.benchmark.store import ResultsStore
    from reweight_gym.runner import RunSpec, run

    noise = {"noise_type": "uniform", "noise_rate": 0.4}
    (tmp_path / "bench").mkdir()
    ResultsStore(tmp_path / "bench" / "results.jsonl").append(
        run(RunSpec("digits", "uniform-noise", noise, "uniform", 0, "tiny")))
    path = tmp_path / "bench" / "results.jsonl"
    row = json.loads(path.read_text())
    del row["config"]["image_size"]  # as written before the field was added (default None)
    path.write_text(json.dumps(row) + "\n")
    at_default = RunSpec("digits", "custom", {}, "uniform", 0, "tiny", env_overrides=noise)
    resized = RunSpec("digits", "custom", {}, "uniform", 0, "tiny",
                      env_overrides={**noise, "image_size": 4})
    log = JsonlLog(tmp_path / "log.jsonl")
    assert reuse_rows(log, [({"s": "resized"}, resized)], [tmp_path / "bench"], ["uniform"]) == 0
    assert reuse_rows(log, [({"s": "default"}, at_default)], [tmp_path / "bench"],
                      ["uniform"]) == 1
