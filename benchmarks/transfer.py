"""A learned weighting policy that carries to CIFAR-10 (issue 25): the evaluation protocol on
instance sets.

Agents learn on the cheap ``train`` instance set (digits and the CIFAR-10 proxy, cached reference
networks), their settings are chosen on the ``validation`` set, and they are judged on the
``heldout-cifar10`` set (the ``cpu`` / ``cpu-noaug`` CIFAR-10 runs), applied at plain training's
cost (``fit``: one network, no reference). Steps (``--steps``, in this order; resumable, every
finished run is appended to a JSON-lines file as it ends):

1. ``select``: every candidate of :data:`CANDIDATES` is trained with SB3 (training seed 0) and
   applied to every validation instance and episode seed; the candidates are ranked by their mean
   paired gain in final *validation* accuracy over uniform weights on the same runs
   (``OUT/selection.md``); the winner is what ``train`` trains (``OUT/selection.json``).
2. ``train``: SB3 and RLlib LAW-DDPG with the chosen settings (or ``--candidate``), training
   seeds 0-2 (``--train-seeds``), ``--episodes`` episodes with 2 parallel searchers each
   (``reweight-gym train``), sharing the reference cache ``OUT/cache``; each invocation's wall
   time and load go to ``OUT/training.jsonl`` and its output to ``OUT/logs/LIB_sSEED.log``.
3. ``search``: the best constant action on the training set with the agents' episode budget
   (:func:`reweight_gym.agents.protocol.constant_action_search_set`).
4. ``evaluate``: on every held-out instance and episode seed: uniform, the best constant, MW-Net,
   GDW, the full FSR (``fsr_relabel_mixup``) and NRT on their defaults, every trained agent and
   the digits-trained demo agent (``--demo-agent``, as is), each run through
   :func:`reweight_gym.runner.run` (policies and agents without a reference). Rows of earlier runs
   of the same config, seed and method (``--reuse`` results directories) are copied, not rerun.
5. ``report``: ``OUT/report.md``: per setting, mean ± sample std over the runs, paired
   comparisons against uniform and the best constant, the cost of each method's run relative to
   uniform, the goals of the issue met or not; ``OUT/stages.png``: the agents' θ (loss
   coefficient), b and the weights of noisy and clean samples per stage, per setting.

    python -m benchmarks.transfer --steps select,train,search --episodes 300
    python -m benchmarks.transfer --steps evaluate --methods uniform,constant,sb3,rllib,demo
    python -m benchmarks.transfer --steps evaluate,report
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, JsonlLog, cifar10_root, machine, markdown_table, mean_std
from reweight_gym.runner import RunSpec

STEPS = ("select", "train", "search", "evaluate", "report")
OUT = RESULTS / "transfer"
LIBS = ("sb3", "rllib")
TRAIN_SEEDS = (0, 1, 2)
META = ("mwnet", "gdw", "fsr_relabel_mixup", "nrt")
#: The agent settings compared by ``select`` (``--settings`` name, agent keywords): the package
#: defaults, the defaults with a pull of the actor towards the zero action (uniform weights:
#: staying level with plain training where weighting does not help), and LAW's DDPG.
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "defaults": ("default", {}),
    "action_l2": ("default", {"action_l2": 1.0}),
    "law": ("law", {}),
}
#: The held-out settings whose meta-gradient gains the agents must match (the issue's goals).
NOISE_SETTINGS = ("cpu-noaug-uniform40", "cpu-noaug-pairflip40")


# ---------------------------------------------------------------------- helpers
def env_kwargs(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The training env's keywords: the training set, the data, the shared reference cache."""
    return {"instance_set": args.train_set, "data_root": args.data_root,
            "reference_cache": str(out / "cache")}


def train_agent(directory: Path, lib: str, seed: int, args: argparse.Namespace,
                candidate: tuple[str, dict[str, Any]], kwargs: dict[str, Any]) -> None:
    """``reweight-gym train`` of a candidate's settings (``--agent-kwargs`` of this script on
    top); it resumes from its checkpoints, and a finished run only reloads."""
    if (directory / "final.json").exists():  # SB3's finished run
        return
    settings, agent_kwargs = candidate
    cmd = [sys.executable, "-m", "reweight_gym.cli", "train", "--lib", lib, "--env",
           "Reweight-Instances-v0", "--env-kwargs", json.dumps(kwargs), "--n-envs", "2",
           "--episodes", str(args.episodes), "--seed", str(seed), "--out", str(directory),
           "--settings", settings, "--agent-kwargs",
           json.dumps({**agent_kwargs, **args.agent_kwargs})]
    print(" ".join(cmd), flush=True)
    logs = directory.parent.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0, load0 = time.time(), os.getloadavg()
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        with open(logs / f"{directory.name}.log", "a") as log:
            for line in p.stdout:  # echoed and kept: the progress lines and the summary
                print(line, end="", flush=True)
                log.write(line)
                log.flush()
                lines.append(line)
    if p.returncode != 0:
        raise SystemExit(f"training {directory} failed (exit {p.returncode})")
    updates = re.findall(r"(\d+) gradient updates", "".join(lines))
    # the wall time of this (possibly resumed) invocation, with the load around it: a resumed
    # run's earlier invocations have rows of their own
    JsonlLog(str(directory.parent.parent / "training.jsonl")).append({
        "agent": f"{directory.parent.name}/{directory.name}", "lib": lib, "seed": seed,
        "episodes": args.episodes, "settings": settings,
        "agent_kwargs": {**agent_kwargs, **args.agent_kwargs}, "seconds": time.time() - t0,
        "gradient_updates": int(updates[-1]) if updates else None,
        "resumed": any(line.startswith("resumed") for line in lines),
        "loadavg_before": load0, "loadavg_after": os.getloadavg(), "command": cmd,
        "machine": machine()})


def agent_path(out: Path, lib: str, seed: int) -> Path:
    return out / "agents" / f"{lib}_s{seed}"


def instance_runs(set_spec: str) -> list[tuple[Any, int]]:
    """(instance, episode seed) of every episode of a set."""
    from reweight_gym.envs.instances import load_instance_set

    s = load_instance_set(set_spec)
    return [(inst, int(seed)) for inst in s.instances for seed in inst.episode_seeds]


def agent_overrides(path: str) -> dict[str, Any]:
    """A trained agent's own env fields (its obs_mode, num_stages, ...)."""
    from reweight_gym.benchmark.fit import agent_env_fields

    return agent_env_fields(path)


def run_jobs(log: JsonlLog, jobs: list[tuple[dict[str, Any], Any]]) -> list[Any]:
    from benchmarks.common import run_specs

    return run_specs(log, jobs)


# ---------------------------------------------------------------------- steps
def step_select(args: argparse.Namespace, out: Path) -> str:
    """Train each candidate (SB3, seed 0) and rank it on the validation set."""

    kwargs = env_kwargs(args, out)
    log = JsonlLog(out / "selection.jsonl")
    jobs = []
    for inst, seed in instance_runs(args.validation_set):
        jobs.append(({"step": "select", "instance": inst.name, "candidate": "uniform"},
                     RunSpec.from_instance(inst, "uniform", seed, "validation",
                                           args.data_root)))
    for name in args.candidates:
        d = out / "selection" / name
        train_agent(d, "sb3", 0, args, CANDIDATES[name], kwargs)
        for inst, seed in instance_runs(args.validation_set):
            jobs.append(({"step": "select", "instance": inst.name, "candidate": name},
                         RunSpec.from_instance(inst, str(d), seed, "validation",
                                               args.data_root, **agent_overrides(str(d)))))
    results = run_jobs(log, jobs)
    gains: dict[str, list[float]] = defaultdict(list)
    uni = {(r.tags["instance"], r.seed): r.val_acc_curve[-1] for r in results
           if r.tags["candidate"] == "uniform"}
    for r in results:
        c = r.tags["candidate"]
        if c != "uniform":
            gains[c].append(100 * (r.val_acc_curve[-1] - uni[(r.tags["instance"], r.seed)]))
    ranked = sorted(gains, key=lambda c: -float(np.mean(gains[c])))
    rows = [[c, f"--settings {CANDIDATES[c][0]} {json.dumps(CANDIDATES[c][1])}", len(gains[c]),
             f"{mean_std(gains[c])[0]:+.2f} ± {mean_std(gains[c])[1]:.2f}"] for c in ranked]
    text = ("# Agent settings, chosen on the validation set\n\nEach candidate trained with SB3 "
            f"(seed 0, {args.episodes} episodes) on the training set and applied to every "
            "validation instance and episode seed; the gain is the final validation accuracy "
            "minus uniform's on the same run (paired), in points.\n\n"
            + markdown_table(["candidate", "arguments", "runs", "gain over uniform"], rows)
            + f"\n\nChosen: **{ranked[0]}**.\n")
    (out / "selection.md").write_text(text)
    (out / "selection.json").write_text(json.dumps({"chosen": ranked[0],
                                                    "settings": CANDIDATES[ranked[0]][0],
                                                    "agent_kwargs": CANDIDATES[ranked[0]][1]}))
    print(text)
    return ranked[0]


def chosen(out: Path, candidate: str | None = None) -> tuple[str, dict[str, Any]]:
    """The settings ``train`` trains: ``candidate`` when given (one of :data:`CANDIDATES`),
    else the select step's winner."""
    if candidate is not None:
        return CANDIDATES[candidate]
    path = out / "selection.json"
    if not path.exists():
        raise SystemExit(f"no {path}: run the select step first")
    d = json.loads(path.read_text())
    return d["settings"], dict(d["agent_kwargs"])


def step_train(args: argparse.Namespace, out: Path) -> None:
    candidate = chosen(out, args.candidate)
    kwargs = env_kwargs(args, out)
    for lib in args.libs:
        for seed in args.train_seeds:
            train_agent(agent_path(out, lib, seed), lib, seed, args, candidate, kwargs)


def step_search(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from reweight_gym.agents.protocol import constant_action_search_set

    res = constant_action_search_set(
        args.train_set, args.episodes, seed=0, log_path=str(out / "search.jsonl"),
        env_kwargs={k: v for k, v in env_kwargs(args, out).items() if k != "instance_set"})
    (out / "constant.json").write_text(json.dumps(res, indent=1))
    print(f"best constant action: {res['action']} (mean search return "
          f"{res['mean_search_return']:.2f} over {res['search_episodes']} episodes)")
    return res


def evaluation_jobs(args: argparse.Namespace, out: Path) -> list[tuple[dict[str, Any], Any]]:
    """Every (tags, spec) of the evaluate step, cheapest methods first."""
    methods: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []  # label, method, kw, ovr
    for m in args.methods:
        if m == "uniform" or m in META:
            methods.append((m, m, {}, {}))
        elif m == "constant":
            path = out / "constant.json"
            if not path.exists():
                raise SystemExit("no constant.json: run the search step first")
            action = json.loads(path.read_text())["action"]
            methods.append(("constant", "constant", {"action": action}, {}))
        elif m in LIBS:
            for seed in TRAIN_SEEDS:
                p = agent_path(out, m, seed)
                if p.exists():
                    methods.append((f"{m}_s{seed}", str(p), {}, agent_overrides(str(p))))
        elif m == "demo":
            if not args.demo_agent or not os.path.exists(args.demo_agent):
                raise SystemExit("--demo-agent PATH: the digits-trained demo agent")
            methods.append(("demo", args.demo_agent, {}, agent_overrides(args.demo_agent)))
        else:
            raise SystemExit(f"unknown method {m!r} for --methods")
    jobs = []
    for label, method, kw, ovr in methods:
        for inst, seed in instance_runs(args.heldout_set):
            spec = RunSpec.from_instance(inst, method, seed, "heldout", args.data_root, kw,
                                         **ovr)
            jobs.append(({"step": "evaluate", "instance": inst.name, "method": label}, spec))
    return jobs


def step_evaluate(args: argparse.Namespace, out: Path) -> None:
    log = JsonlLog(out / "heldout.jsonl")
    jobs = evaluation_jobs(args, out)
    if args.reuse:
        from benchmarks.common import reuse_rows

        copied = reuse_rows(log, jobs, args.reuse, ("uniform", *META))
        print(f"copied {copied} stored rows", flush=True)
    run_jobs(log, jobs)


# ---------------------------------------------------------------------- report
def _by(results: list[Any]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        label = r.tags["method"]
        group = label.split("_s")[0] if label.split("_s")[0] in LIBS else label
        out[r.tags["instance"]][group].append(r)
    return out


def training_lines(out: Path) -> list[str]:
    """Markdown: the wall time of every training invocation of the train step
    (``OUT/training.jsonl``), with the load average around it."""
    rows = JsonlLog(out / "training.jsonl").rows()
    if not rows:
        return []
    table = [[r.get("agent", "–"), r["lib"], r["seed"], r["settings"], r["episodes"],
              r.get("gradient_updates"),
              f"{r['seconds'] / 60:.1f}", "yes" if r.get("resumed") else "no",
              f"{r['loadavg_before'][0]:.1f} / {r['loadavg_after'][0]:.1f}"] for r in rows]
    return ["## Training the agents", "",
            "Each `reweight-gym train` invocation of the select and train steps on the "
            "training instance set (2 searchers, the reference cache shared), on this machine; "
            "the load average (1 min) before / after it says what else ran.", "",
            markdown_table(["agent", "lib", "seed", "settings", "episodes", "gradient updates",
                            "wall time (min)", "resumed", "load"], table), ""]


def step_report(args: argparse.Namespace, out: Path) -> str:
    from reweight_gym.agents.protocol import paired_comparison
    from reweight_gym.runner import RunResult

    results = [RunResult.from_row(r) for r in JsonlLog(out / "heldout.jsonl").rows()]
    by = _by(results)
    training = training_lines(out)
    settings = [s for s in (inst.name for inst, _ in instance_runs(args.heldout_set))
                if s in by]
    settings = list(dict.fromkeys(settings))
    lines = ["# A learned weighting policy on held-out CIFAR-10 runs", "",
             "Every method on every held-out setting of `heldout-cifar10` (episode seeds 0-2, "
             "each with its own data draw): final test accuracy and test accuracy at the "
             "best-validation epoch (%), mean ± sample std over the runs (agents: 3 training "
             "seeds x 3 episode seeds); the difference to uniform is paired by episode seed; "
             "cost is the run's wall time relative to uniform's on the same seed.", ""]
    means: dict[str, dict[str, float]] = defaultdict(dict)
    for s in settings:
        uni = {r.seed: r for r in by[s].get("uniform", [])}
        const = {r.seed: r for r in by[s].get("constant", [])}
        rows = []
        for m in ["uniform", "constant", *META, *LIBS, "demo"]:
            rs = by[s].get(m)
            if not rs:
                continue
            final = mean_std([100 * r.final_test_acc for r in rs])
            best = mean_std([100 * r.test_acc_at_best_val for r in rs])
            means[m][s] = final[0]
            pairs = [(r.final_test_acc, uni[r.seed].final_test_acc) for r in rs if r.seed in uni]
            vs_uni = paired_comparison([100 * a for a, _ in pairs], [100 * b for _, b in pairs]) \
                if pairs and m != "uniform" else None
            cpairs = [(r.final_test_acc, const[r.seed].final_test_acc) for r in rs
                      if r.seed in const]
            vs_c = paired_comparison([100 * a for a, _ in cpairs], [100 * b for _, b in cpairs]) \
                if cpairs and m not in ("uniform", "constant") else None
            cost = [r.seconds / uni[r.seed].seconds for r in rs
                    if r.seed in uni and r.seconds and uni[r.seed].seconds
                    and not r.tags.get("copied_from") and not uni[r.seed].tags.get(
                        "copied_from")]
            wn = [r.noisy_weight_mean for r in rs if r.noisy_weight_mean is not None]
            wc = [r.clean_weight_mean for r in rs if r.clean_weight_mean is not None]
            rows.append([m, len(rs), f"{final[0]:.2f} ± {final[1]:.2f}",
                         f"{best[0]:.2f} ± {best[1]:.2f}",
                         f"{vs_uni['mean_diff']:+.2f} (p={vs_uni['t_test_p']:.2g}, "
                         f"{vs_uni['wins']}/{vs_uni['n']} wins)" if vs_uni else "–",
                         f"{vs_c['mean_diff']:+.2f} (p={vs_c['t_test_p']:.2g})" if vs_c else "–",
                         f"{np.mean(wn):.2f} / {np.mean(wc):.2f}" if wn and wc else "–",
                         f"{np.mean(cost):.2f}x" if cost else "–"])
            if vs_c is not None:
                means[f"{m}:vs_constant_p"][s] = vs_c["t_test_p"] if vs_c["mean_diff"] > 0 else 1
        lines += [f"## {s}", "", markdown_table(
            ["method", "runs", "final test acc", "at best-val epoch", "final vs uniform",
             "final vs constant", "w noisy / clean", "time x uniform"], rows), ""]
    lines += goals(means, settings)
    lines += ["", "![per-stage actions and weights](stages.png)", "", *training]
    plot_stages(by, settings, out / "stages.png")
    text = "\n".join(lines)
    (out / "report.md").write_text(text + "\n")
    print(text)
    return text


def goals(means: dict[str, dict[str, float]], settings: list[str]) -> list[str]:
    """The issue's four goals, per library: met or not, with the numbers."""
    lines = ["## Goals", ""]
    meta_means = {m: float(np.mean([means[m][s] for s in settings])) for m in META
                  if all(s in means.get(m, {}) for s in settings)}
    best_meta = max(meta_means.items(), key=lambda t: t[1]) if meta_means else None
    for lib in LIBS:
        if not all(s in means.get(lib, {}) for s in settings):
            lines.append(f"- {lib}: not evaluated on every setting yet")
            continue
        d = {s: means[lib][s] - means["uniform"][s] for s in settings}
        g1 = all(v >= -0.5 for v in d.values())
        g2 = all(d.get(s, -1e9) >= 5.0 for s in NOISE_SETTINGS)
        mean5 = float(np.mean([means[lib][s] for s in settings]))
        g3 = best_meta is not None and mean5 >= best_meta[1]
        sig = [s for s in settings if means.get(f"{lib}:vs_constant_p", {}).get(s, 1) < 0.05]
        g4 = len(sig) >= 2
        lines += [
            f"- **{lib}**: (1) never more than 0.5 below uniform: {'met' if g1 else 'not met'} "
            f"({', '.join(f'{s} {v:+.2f}' for s, v in d.items())}); (2) at least +5 on both "
            f"cpu-noaug noise settings: {'met' if g2 else 'not met'}; (3) mean over the "
            f"settings {mean5:.2f} vs the best meta method's "
            f"({best_meta[0] if best_meta else '–'}) "
            f"{best_meta[1] if best_meta else float('nan'):.2f}: {'met' if g3 else 'not met'}; "
            f"(4) significantly above the best constant (paired t-test p < 0.05) on "
            f"{len(sig)} setting(s){': ' + ', '.join(sig) if sig else ''}: "
            f"{'met' if g4 else 'not met'}."]
    return lines


def plot_stages(by: dict[str, dict[str, list[Any]]], settings: list[str], path: Path) -> None:
    """Per setting: the agents' loss coefficient θ_loss and bias b per weighted stage, and the
    weights of noisy and clean samples per stage (mean over runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reweight_gym.training.characteristics import feature_names

    if not settings:
        return
    fig, axes = plt.subplots(2, len(settings), figsize=(3.6 * len(settings), 6), squeeze=False)
    for j, s in enumerate(settings):
        for m in (*LIBS, "demo", "constant"):
            rs = [r for r in by[s].get(m, []) if r.stage_actions]
            if not rs:
                continue
            names = feature_names(rs[0].config["features"], 10)
            li = names.index("loss")
            acts = np.array([r.stage_actions for r in rs], dtype=float)  # (runs, stages, d)
            x = np.arange(acts.shape[1]) + int(rs[0].config["warmup_stages"])
            axes[0, j].plot(x, acts[:, :, li].mean(0), marker="o", label=f"{m} θ_loss")
            axes[0, j].plot(x, acts[:, :, -1].mean(0), ls="--", label=f"{m} b")
            noisy = np.array([[np.nan if v is None else v for v in r.stage_noisy_weight_mean]
                              for r in rs], dtype=float)
            clean = np.array([[np.nan if v is None else v for v in r.stage_clean_weight_mean]
                              for r in rs], dtype=float)
            axes[1, j].plot(np.nanmean(noisy, 0), marker="o", label=f"{m} noisy")
            axes[1, j].plot(np.nanmean(clean, 0), ls="--", label=f"{m} clean")
        axes[0, j].set_title(s, fontsize=9)
        axes[0, j].set_xlabel("stage")
        axes[1, j].set_xlabel("stage")
        axes[0, j].grid(alpha=0.3)
        axes[1, j].grid(alpha=0.3)
    axes[0, 0].set_ylabel("action (θ_loss, b)")
    axes[1, 0].set_ylabel("mean weight")
    axes[0, 0].legend(fontsize=6)
    axes[1, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--episodes", type=int, default=300,
                    help="training episodes of every agent (and the constant search's budget)")
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--agent-kwargs", default="{}",
                    help="JSON object of agent keywords on top of every candidate's")
    ap.add_argument("--methods", default="uniform,constant,sb3,rllib,demo,mwnet,gdw,"
                                         "fsr_relabel_mixup,nrt",
                    help="methods of the evaluate step, in the order they run")
    ap.add_argument("--demo-agent", default=None, help="the demo's trained agent (make demo)")
    ap.add_argument("--reuse", nargs="*", default=[],
                    help="benchmark results directories whose matching rows are copied")
    ap.add_argument("--candidates", default=",".join(CANDIDATES),
                    help=f"the settings select compares, of {', '.join(CANDIDATES)}")
    ap.add_argument("--candidate", default=None, choices=list(CANDIDATES),
                    help="train these settings instead of the select step's winner")
    ap.add_argument("--train-seeds", default=",".join(map(str, TRAIN_SEEDS)),
                    help="training seeds of the train step")
    ap.add_argument("--train-set", default="train", help="instance set agents train on")
    ap.add_argument("--validation-set", default="validation", help="instance set of select")
    ap.add_argument("--heldout-set", default="heldout-cifar10", help="instance set evaluated")
    ap.add_argument("--data-root", default=cifar10_root())
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    args.libs = [x for x in args.libs.split(",") if x]
    args.methods = [x for x in args.methods.split(",") if x]
    args.candidates = [x for x in args.candidates.split(",") if x]
    args.train_seeds = [int(x) for x in args.train_seeds.split(",") if x]
    args.agent_kwargs = json.loads(args.agent_kwargs)
    bad = sorted(set(args.candidates) - set(CANDIDATES))
    if bad:
        raise SystemExit(f"unknown --candidates {bad}: allowed: {', '.join(CANDIDATES)}")
    steps = [x for x in args.steps.split(",") if x]
    bad = sorted(set(steps) - set(STEPS))
    if bad:
        raise SystemExit(f"unknown --steps {bad}: allowed: {', '.join(STEPS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        if step in steps:
            {"select": step_select, "train": step_train, "search": step_search,
             "evaluate": step_evaluate, "report": step_report}[step](args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
