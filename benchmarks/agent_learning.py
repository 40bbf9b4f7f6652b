"""Do the agents learn? LAW-DDPG against fixed schedules and meta-gradient methods, by protocol.

The evaluation protocol is ``agents/protocol.py`` (held-out episode seeds and a held-out data
draw, 3 training seeds, paired comparisons). On the demo's setting
(``reweight_gym.experiments.DEMO``: digits, 40% noise, 100 epochs, 10 stages) with the given
corruption, this script

0. ``select`` (only when asked for, on its own ``--out``): how the defaults were chosen. Every
   candidate setting of :data:`CANDIDATES` (LAW's DDPG, the defaults, the earlier defaults and
   those with one of their changes undone) is trained with SB3 for each of ``--select-seeds``
   and played on the protocol's *validation* episodes only; ``OUT/selection.md`` ranks them by
   mean validation return, and ``agents/settings.py`` holds the winner;
1. ``train``: trains each library's DDPG with the package defaults (``agents/settings.py``) for
   ``--episodes`` episodes per training seed, 2 parallel searchers, checkpointing as it goes;
2. ``search``: finds the best constant action with the same episode budget
   (:func:`reweight_gym.agents.protocol.constant_action_search`);
3. ``evaluate``: plays every agent, the fixed policies (easy_first, hard_first, random, the best
   constant) and the meta-gradient baselines on the evaluation episodes;
4. ``curves``: plays every saved checkpoint of every agent on the first ``--curve-episodes``
   evaluation episodes of the training data draw (the learning curve);
5. ``transfer``: plays each trained agent for one episode (its own evaluation seed) on CIFAR-10,
   ``--transfer-presets`` (``cpu``; ``cpu-noaug`` is the setting where plain training memorises),
   with the same corruption at 40% (LAW's transfer from a small proxy; the features are
   class-count free);
6. ``report``: writes ``OUT/report.md`` (table, paired comparisons) and ``OUT/learning_curve.png``.

Every played episode is appended to ``OUT/episodes.jsonl`` as it finishes; a rerun skips what is
there (resumable). Steps run in order; ``--steps`` selects some (default: all but ``select``).

    python -m benchmarks.agent_learning --corruption uniform --steps select \\
        --out benchmarks/results/agents/selection_uniform

    python -m benchmarks.agent_learning --corruption uniform \\
        --out benchmarks/results/agents/demo_uniform
    python -m benchmarks.agent_learning --corruption pair_flip --libs sb3,rllib \\
        --baselines mwnet,gdw,fsr,nrt,mwnet:meta_lr=1.5811388300841897e-4,mwnet:meta_lr=0.001 \\
        --steps train,search,evaluate,curves,report \\
        --out benchmarks/results/agents/demo_pair_flip
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from benchmarks.common import cifar10_root

STEPS = ("select", "train", "search", "evaluate", "curves", "transfer", "report")
FIXED = ("easy_first", "hard_first", "random")
ENV_ID = "Reweight-Digits-v0"
#: The settings the ``select`` step compares (``reweight-gym train`` arguments): LAW's DDPG, the
#: package defaults, the earlier defaults (2 FDU epochs, which the selection replaced by 4), and
#: the earlier defaults with one of their changes against LAW undone (FDU off: no epochs).
CANDIDATES: dict[str, list[str]] = {
    "law": ["--settings", "law"],
    "defaults": [],
    "fdu2": ["--agent-kwargs", '{"fdu_epochs": 2}'],
    "fdu2_one_critic": ["--agent-kwargs",
                        '{"fdu_epochs": 2, "n_critics": 1, "target_policy_noise": 0.0}'],
    "fdu2_law_lrs": ["--agent-kwargs", '{"fdu_epochs": 2, "actor_lr": 1e-5, "critic_lr": 1e-4}'],
    "no_fdu": ["--agent-kwargs", '{"full_data_update": false}'],
}


def _config(corruption: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The demo's run with ``corruption``; the env formulation spelled out (the defaults:
    class-count-free features, normalised weights), ``overrides`` last (e.g. LAW_FORMULATION)."""
    from reweight_gym.experiments import DEMO

    cfg = dict(DEMO.env)
    cfg.update(noise_type=corruption, features="agnostic", normalize_weights=True)
    cfg.update(overrides)
    return cfg


def _git_commit() -> str | None:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except OSError:
        return None


# ---------------------------------------------------------------------- episodes store
def _load_rows(out: str) -> list[dict[str, Any]]:
    path = os.path.join(out, "episodes.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _key(method: str, episode_set: str, data_seed: int, reset_seed: int) -> str:
    """Identity of a played episode in ``episodes.jsonl``."""
    return f"{method}|{episode_set}|{data_seed}|{reset_seed}"


def _play_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: one episode (one torch thread)."""
    import torch

    import reweight_gym
    from reweight_gym.agents.evaluate import load_agent
    from reweight_gym.agents.protocol import ConstantPolicy, play, spaces
    from reweight_gym.config import EnvConfig
    from reweight_gym.data import build_splits

    torch.set_num_threads(job.get("threads", 1))
    reweight_gym.tune_cpu_allocator()
    t0 = time.perf_counter()
    method: Any = job["method_spec"]
    if job.get("constant") is not None:
        cfg = EnvConfig.resolve("digits", "tiny", **job["config"])
        obs_space, act_space = spaces(cfg, build_splits(cfg).num_classes)
        method = ConstantPolicy(obs_space, act_space, job["constant"])
    elif job.get("checkpoint"):
        method = load_agent(job["checkpoint"])
    out = play(method, job["config"], job["reset_seed"], method_kwargs=job.get("method_kwargs"),
               label=job["method"], dataset=job.get("dataset", "digits"),
               preset=job.get("preset", "tiny"))
    row = out.to_dict()
    row.update(method=job["method"], set=job["set"], group=job["group"],
               training_seed=job.get("training_seed"), episodes_trained=job.get("episodes"),
               seconds=time.perf_counter() - t0)
    return row


def _run_jobs(out: str, jobs: list[dict[str, Any]], workers: int, commit: str | None) -> None:
    have = {_key(r["method"], r["set"], r["data_seed"], r["reset_seed"]) for r in _load_rows(out)}
    todo = [j for j in jobs
            if _key(j["method"], j["set"], j["config"]["seed"], j["reset_seed"]) not in have]
    print(f"[{len(todo)} episodes to play, {len(jobs) - len(todo)} already done]", flush=True)
    if not todo:
        return
    path = os.path.join(out, "episodes.jsonl")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(_play_job, todo):
            row["git_commit"] = commit
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  {row['method']:>24s} {row['set']:>16s} seed {row['reset_seed']}: return "
                  f"{row['episode_return']:8.2f}  test {row['test_acc_target']:.4f} "
                  f"(ref {row['test_acc_reference']:.4f})  {row['seconds']:.0f}s", flush=True)


# ---------------------------------------------------------------------- steps
def agent_dirs(out: str, libs: list[str], seeds: list[int]) -> dict[str, str]:
    return {f"{lib}_s{s}": os.path.join(out, "agents", f"{lib}_s{s}") for lib in libs
            for s in seeds}


def _train_agent(name: str, lib: str, seed: int | str, d: str, episodes: int,
                 cfg: dict[str, Any], extra: list[str] | None = None) -> None:
    """``reweight-gym train`` one agent into ``d`` (resumes), recording the first complete
    run's wall time."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "reweight_gym.cli", "train", "--lib", lib, "--env", ENV_ID,
           "--env-kwargs", json.dumps({"preset": "tiny", **cfg}), "--n-envs", "2",
           "--episodes", str(episodes), "--seed", str(seed), "--out", d, *(extra or [])]
    print(f"[train {name}] {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)
    timing = os.path.join(d, "train_time.json")
    if not os.path.exists(timing):  # the first complete run's wall time
        with open(timing, "w") as f:
            json.dump({"seconds": time.perf_counter() - t0, "episodes": episodes}, f)


def step_train(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    for name, d in agent_dirs(args.out, args.libs, args.train_seeds).items():
        lib, seed = name.split("_s")
        _train_agent(name, lib, seed, d, args.episodes, cfg,
                     ["--agent-kwargs", args.agent_kwargs] if args.agent_kwargs else None)


def step_select(args: argparse.Namespace, cfg: dict[str, Any], commit: str | None) -> str:
    """Train every candidate of :data:`CANDIDATES` (SB3, ``--select-seeds``) and play it on the
    protocol's validation episodes (never the evaluation ones); write ``OUT/selection.md``.

    The candidates differ only in agent settings, which both libraries share under the same
    names (``agents/settings.py``), so the choice is made once, on SB3."""
    from reweight_gym.agents.protocol import mean_std, validation_set

    es = validation_set(cfg)
    unknown = sorted(set(args.candidates or ()) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"unknown --candidates {unknown}: allowed: {', '.join(CANDIDATES)}")
    # rows of a candidate are only written in its own iteration below: one read serves all
    before = _load_rows(args.out)
    for seed in args.select_seeds:
        for cand, extra in CANDIDATES.items():
            if args.candidates and cand not in args.candidates:
                continue
            name = f"{cand}_s{seed}"
            stored = [r for r in before if r["method"] == f"select:{name}"]
            other = sorted({r["episodes_trained"] for r in stored} - {args.episodes})
            if other:
                raise SystemExit(f"{args.out} holds select:{name} trained for {other} episodes, "
                                 f"not --episodes {args.episodes}: use another --out")
            if len(stored) == len(es.reset_seeds):
                continue  # played already: a fresh clone has no checkpoints (*.zip are ignored)
            d = os.path.join(args.out, "selection", name)
            _train_agent(name, "sb3", seed, d, args.episodes, cfg, extra)
            _run_jobs(args.out, [{"config": es.config, "reset_seed": s, "set": es.name,
                                  "method": f"select:{name}", "method_spec": None,
                                  "checkpoint": _final_checkpoint(d), "group": "select",
                                  "training_seed": seed, "episodes": args.episodes}
                                 for s in es.reset_seeds], args.workers, commit)
    rows = [r for r in _load_rows(args.out) if r["group"] == "select"]
    lines = [f"# Choosing the agent settings on the validation episodes ({cfg['noise_type']} "
             f"noise {cfg['noise_rate']:.0%})", "",
             f"SB3 LAW-DDPG, {', '.join(map(str, sorted({r['episodes_trained'] for r in rows})))}"
             " training episodes per training seed; each agent played on the "
             f"{len(es.reset_seeds)} validation episodes (reset seeds "
             f"{es.reset_seeds[0]}-{es.reset_seeds[-1]}, data seed {es.config['seed']}). "
             "Return and Δ test (target − uniform reference, points): mean ± std over training "
             "seeds of each seed's mean over the episodes.", "",
             "| candidate | settings | training seeds | validation return | Δ test (pts) | "
             "each seed's return |", "|---|---|---|---|---|---|"]
    scores = {}
    for cand, extra in CANDIDATES.items():
        per_seed_ret, per_seed_d, seeds = [], [], []
        for seed in sorted({r["training_seed"] for r in rows}):
            mine = [r for r in rows if r["method"] == f"select:{cand}_s{seed}"]
            if len(mine) == len(es.reset_seeds):
                seeds.append(seed)
                per_seed_ret.append(float(np.mean([r["episode_return"] for r in mine])))
                per_seed_d.append(100 * float(np.mean(
                    [r["test_acc_target"] - r["test_acc_reference"] for r in mine])))
        if not per_seed_ret:
            continue
        (rm, rs), (dm, ds) = mean_std(per_seed_ret), mean_std(per_seed_d)
        scores[cand] = rm
        lines.append(f"| {cand} | `{' '.join(extra) or '(defaults)'}` | "
                     f"{', '.join(map(str, seeds))} | {rm:.1f} ± {rs:.1f} | {dm:+.2f} ± {ds:.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in per_seed_ret)} |")
    if scores:
        best = max(scores, key=scores.get)
        lines += ["", f"Best by mean validation return: **{best}**."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "selection.md"), "w") as f:
        f.write(text)
    return text


def step_search(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    from reweight_gym.agents.protocol import TRAIN_DATA_SEED, constant_action_search

    path = os.path.join(args.out, "search.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    t0 = time.perf_counter()
    res = constant_action_search({**cfg, "seed": TRAIN_DATA_SEED}, args.episodes, seed=0,
                                 log_path=os.path.join(args.out, "search_episodes.jsonl"))
    res["seconds"] = time.perf_counter() - t0
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    return res


def _final_checkpoint(d: str) -> str | None:
    for name in ("final.zip", "checkpoint"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return d if os.path.exists(os.path.join(d, "agent.json")) else None


def step_evaluate(args: argparse.Namespace, cfg: dict[str, Any], commit: str | None) -> None:
    from reweight_gym.agents.protocol import evaluation_sets
    from reweight_gym.experiments import DEMO_METHOD_KWARGS

    search = step_search(args, cfg) if "constant" in args.fixed else None
    jobs: list[dict[str, Any]] = []
    for es in evaluation_sets(cfg):
        for s in es.reset_seeds:
            base = {"config": es.config, "reset_seed": s, "set": es.name}
            for name, d in agent_dirs(args.out, args.libs, args.train_seeds).items():
                ckpt = _final_checkpoint(d)
                if ckpt is None:
                    print(f"[evaluate] no trained agent in {d}: skipped", flush=True)
                    continue
                lib, seed = name.split("_s")
                jobs.append({**base, "method": f"{lib}_ddpg_s{seed}", "method_spec": None,
                             "checkpoint": ckpt, "group": "agent",
                             "training_seed": int(seed), "episodes": args.episodes})
            for m in args.fixed:
                if m == "constant":
                    assert search is not None
                    jobs.append({**base, "method": "best_constant", "method_spec": None,
                                 "constant": search["action"], "group": "fixed"})
                else:
                    jobs.append({**base, "method": m, "method_spec": m, "group": "fixed"})
            for entry in args.baselines:
                m, kwargs = baseline_spec(entry, DEMO_METHOD_KWARGS)
                jobs.append({**base, "method": entry, "method_spec": m, "group": "meta",
                             "method_kwargs": kwargs})
    _run_jobs(args.out, jobs, args.workers, commit)


def baseline_spec(entry: str, demo_kwargs: dict[str, dict[str, Any]]
                  ) -> tuple[str, dict[str, Any] | None]:
    """``--baselines`` entry -> (method, its options): ``mwnet`` runs with the demo's options
    (``DEMO_METHOD_KWARGS``), ``mwnet:defaults`` with the package's defaults and
    ``mwnet:meta_lr=0.001+...`` with the options given (values read as JSON, else strings); the
    entry is the method's name in the report."""
    method, _, opts = entry.partition(":")
    if not opts:
        return method, demo_kwargs.get(method)
    if opts == "defaults":
        return method, None
    kwargs: dict[str, Any] = {}
    for item in opts.split("+"):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--baselines entry {entry!r}: options must be key=value joined "
                             "by '+', or 'defaults'")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return method, kwargs


def _checkpoints(d: str) -> list[tuple[int, str]]:
    """(training episodes, path) of an SB3 run's periodic checkpoints."""
    meta_path = os.path.join(d, "agent.json")
    if not os.path.exists(meta_path):
        return []
    with open(meta_path) as f:
        meta = json.load(f)
    stages = meta.get("episode_steps") or 10
    found = []
    for p in glob.glob(os.path.join(d, "*_steps.zip")):
        m = re.search(r"_(\d+)_steps\.zip$", p)
        if m:
            found.append((int(m.group(1)) // stages, p))
    return sorted(found)


def step_curves(args: argparse.Namespace, cfg: dict[str, Any], commit: str | None) -> None:
    from reweight_gym.agents.protocol import evaluation_sets

    es = evaluation_sets(cfg)[0]
    jobs = []
    for name, d in agent_dirs(args.out, args.libs, args.train_seeds).items():
        lib, seed = name.split("_s")
        for episodes, ckpt in _checkpoints(d):
            for s in es.reset_seeds[:args.curve_episodes]:
                jobs.append({"config": es.config, "reset_seed": s, "set": "curve",
                             "method": f"{lib}_ddpg_s{seed}@{episodes}", "method_spec": None,
                             "checkpoint": ckpt, "group": "curve", "training_seed": int(seed),
                             "episodes": episodes})
    _run_jobs(args.out, jobs, args.workers, commit)


def step_transfer(args: argparse.Namespace, cfg: dict[str, Any], commit: str | None) -> None:
    from reweight_gym.agents.protocol import EVALUATION_SEEDS, TRAIN_DATA_SEED

    tcfg = {"noise_rate": 0.4, "noise_type": cfg["noise_type"], "features": cfg["features"],
            "normalize_weights": cfg["normalize_weights"], "data_root": args.cifar_root,
            "seed": TRAIN_DATA_SEED}
    jobs = []
    for preset in args.transfer_presets:
        for name, d in agent_dirs(args.out, args.libs, args.train_seeds).items():
            ckpt = _final_checkpoint(d)
            if ckpt is None:
                continue
            lib, seed = name.split("_s")
            # training seed k plays evaluation episode k: one CIFAR episode per agent
            episode = EVALUATION_SEEDS[int(seed) % len(EVALUATION_SEEDS)]
            jobs.append({"config": tcfg, "reset_seed": episode,
                         "set": f"transfer_cifar10_{preset}", "method": f"{lib}_ddpg_s{seed}",
                         "method_spec": None, "checkpoint": ckpt, "group": "transfer",
                         "training_seed": int(seed), "episodes": args.episodes,
                         "dataset": "cifar10", "preset": preset,
                         "threads": args.transfer_threads})
    _run_jobs(args.out, jobs, args.transfer_workers, commit)


# ---------------------------------------------------------------------- report
def _by(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def step_report(args: argparse.Namespace, cfg: dict[str, Any]) -> str:
    from reweight_gym.agents.protocol import mean_std, paired_comparison

    rows = [r for r in _load_rows(args.out) if r["group"] not in ("curve", "transfer", "select")]
    transfer = [r for r in _load_rows(args.out) if r["group"] == "transfer"]
    if not rows:
        raise SystemExit(f"no evaluated episodes in {args.out}")
    sets = sorted({r["set"] for r in rows})
    episodes = sorted({(r["set"], r["reset_seed"]) for r in rows})

    def per_episode(method: str, key: str) -> dict[tuple[str, int], float]:
        return {(r["set"], r["reset_seed"]): r[key] for r in _by(rows, method=method)}

    reference = {}
    for r in rows:
        reference[(r["set"], r["reset_seed"])] = r["test_acc_reference"]
    methods = sorted({r["method"] for r in rows})
    agents_by_lib: dict[str, list[str]] = {}
    for m in methods:
        g = _by(rows, method=m)[0]["group"]
        if g == "agent":
            agents_by_lib.setdefault(m.rsplit("_s", 1)[0], []).append(m)
    lines = [f"# Agents on the demo setting, {cfg['noise_type']} noise "
             f"{cfg['noise_rate']:.0%}", "",
             f"Evaluation: {len(episodes)} episodes ({', '.join(sets)}; "
             "agents/protocol.py). Agents: mean ± std over training seeds of each seed's mean "
             "over the episodes; other methods: mean ± std over the episodes. Test accuracy in "
             "%; Δ = target − uniform reference on the same episode.", "",
             "| method | training seeds | return | final test acc | Δ test vs uniform | "
             "w noisy | w clean | each seed's Δ test |", "|---|---|---|---|---|---|---|---|"]
    summary: dict[str, dict[str, Any]] = {}

    def cell(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
        m, s = mean_std([v * scale for v in values])
        return f"{fmt.format(m)} ± {fmt.format(s)}"

    ref_acc = [reference[e] for e in episodes]
    lines.append(f"| uniform | – | 0.00 ± 0.00 | {cell(ref_acc, 100)} | 0.00 | 1.000 | 1.000 | – |")
    entries: list[tuple[str, list[str]]] = [(lib, ms) for lib, ms in agents_by_lib.items()]
    entries += [(m, [m]) for m in methods if _by(rows, method=m)[0]["group"] != "agent"]
    per_ep_mean: dict[str, dict[tuple[str, int], float]] = {}
    per_ep_ret: dict[str, dict[tuple[str, int], float]] = {}
    for label, ms in entries:
        seed_ret, seed_acc, seed_delta, wn, wc = [], [], [], [], []
        acc_ep = {e: [] for e in episodes}
        ret_ep = {e: [] for e in episodes}
        for m in ms:
            acc, ret = per_episode(m, "test_acc_target"), per_episode(m, "episode_return")
            common = [e for e in episodes if e in acc]
            seed_ret.append(float(np.mean([ret[e] for e in common])))
            seed_acc.append(float(np.mean([acc[e] for e in common])))
            seed_delta.append(float(np.mean([acc[e] - reference[e] for e in common])))
            for e in common:
                acc_ep[e].append(acc[e])
                ret_ep[e].append(ret[e])
            wn += [r["noisy_weight_mean"] for r in _by(rows, method=m) if r["noisy_weight_mean"]]
            wc += [r["clean_weight_mean"] for r in _by(rows, method=m) if r["clean_weight_mean"]]
        per_ep_mean[label] = {e: float(np.mean(v)) for e, v in acc_ep.items() if v}
        per_ep_ret[label] = {e: float(np.mean(v)) for e, v in ret_ep.items() if v}
        if len(ms) > 1:
            ret_c, acc_c, d_c = cell(seed_ret), cell(seed_acc, 100), cell(seed_delta, 100)
            each = ", ".join(f"{100 * d:+.2f}" for d in seed_delta)
        else:
            vals = list(per_ep_ret[label].values())
            ret_c, acc_c = cell(vals), cell(list(per_ep_mean[label].values()), 100)
            d_c = cell([per_ep_mean[label][e] - reference[e] for e in per_ep_mean[label]], 100)
            each = "–"
        summary[label] = {"return": seed_ret, "test_acc": seed_acc, "delta_test": seed_delta,
                          "training_seeds": len(ms)}
        lines.append(f"| {label} | {len(ms) if len(ms) > 1 else '–'} | {ret_c} | {acc_c} | "
                     f"{d_c} | {np.mean(wn) if wn else float('nan'):.3f} | "
                     f"{np.mean(wc) if wc else float('nan'):.3f} | {each} |")
    # paired comparisons: each agent (mean over its training seeds per episode) vs each method
    lines += ["", "Paired comparisons over the evaluation episodes (agent's per-episode mean over "
              "its training seeds minus the other method; t-test and sign-test p-values):", "",
              "| agent | vs | Δ return | Δ test acc (pts) | wins/ties/losses (test) | p (t) | "
              "p (sign) |", "|---|---|---|---|---|---|---|"]
    comparisons = {}
    for lib in agents_by_lib:
        others = ["uniform"] + [label for label, _ in entries if label != lib]
        for o in others:
            common = [e for e in episodes if e in per_ep_mean[lib]
                      and (o == "uniform" or e in per_ep_mean[o])]
            a_acc = [per_ep_mean[lib][e] for e in common]
            b_acc = [reference[e] if o == "uniform" else per_ep_mean[o][e] for e in common]
            a_ret = [per_ep_ret[lib][e] for e in common]
            b_ret = [0.0 if o == "uniform" else per_ep_ret[o][e] for e in common]
            pc_acc, pc_ret = paired_comparison(a_acc, b_acc), paired_comparison(a_ret, b_ret)
            comparisons[f"{lib}|{o}"] = {"test_acc": pc_acc, "return": pc_ret}
            lines.append(f"| {lib} | {o} | {pc_ret['mean_diff']:+.2f} | "
                         f"{100 * pc_acc['mean_diff']:+.2f} ± {100 * pc_acc['std_diff']:.2f} | "
                         f"{pc_acc['wins']}/{pc_acc['ties']}/{pc_acc['losses']} | "
                         f"{pc_acc['t_test_p']:.3f} | {pc_acc['sign_test_p']:.3f} |")
    search_path = os.path.join(args.out, "search.json")
    if os.path.exists(search_path):
        with open(search_path) as f:
            search = json.load(f)
        lines += ["", f"Best constant action (successive halving, {search['search_episodes']} "
                  f"episodes, rounds {search['rounds']}): "
                  f"{[round(a, 3) for a in search['action']]}"]
    timing = []
    for name, d in agent_dirs(args.out, args.libs, args.train_seeds).items():
        p = os.path.join(d, "train_time.json")
        if os.path.exists(p):
            with open(p) as f:
                t = json.load(f)
            # "note": how the time was taken when it is not one uninterrupted run
            timing.append(f"{name} {t['seconds'] / 60:.1f} min"
                          + (f" ({t['note']})" if t.get("note") else ""))
    if timing:
        lines += ["", "Agent training wall time (2 searchers, 2 cores): " + ", ".join(timing)]
    for tset in sorted({r["set"] for r in transfer}):
        trows = sorted(_by(transfer, set=tset), key=lambda r: r["method"])
        preset = tset.removeprefix("transfer_cifar10_")
        lines += ["", "Transfer: each agent trained on digits plays one episode of CIFAR-10 "
                  f"(`{preset}` preset, 40% noise, its own evaluation seed; the reference is "
                  "uniform weighting on the same episode):", "",
                  "| agent | episode seed | return | test acc | uniform test acc | Δ (pts) | "
                  "w noisy / clean |", "|---|---|---|---|---|---|---|"]
        for r in trows:
            # a weight mean is None when every stage of the episode diverged
            w = " / ".join("–" if x is None else f"{x:.2f}"
                           for x in (r["noisy_weight_mean"], r["clean_weight_mean"]))
            lines.append(f"| {r['method']} | {r['reset_seed']} | {r['episode_return']:.2f} | "
                         f"{100 * r['test_acc_target']:.2f} | {100 * r['test_acc_reference']:.2f}"
                         f" | {100 * (r['test_acc_target'] - r['test_acc_reference']):+.2f} | "
                         f"{w} |")
        d = [r["test_acc_target"] - r["test_acc_reference"] for r in trows]
        m, s = mean_std([100 * x for x in d])
        rm, rs = mean_std([r["episode_return"] for r in trows])
        lines.append(f"| mean ± std | | {rm:.2f} ± {rs:.2f} | | | {m:+.2f} ± {s:.2f} | |")
        # the first transfer set keeps its old summary key
        key = "transfer" if preset == "cpu" else f"transfer_{preset}"
        summary[key] = {"delta_test": d, "return": [r["episode_return"] for r in trows]}
    commits = sorted({r.get("git_commit") or "unknown" for r in rows + transfer})
    lines += ["", f"Code: git commit(s) {', '.join(c[:10] for c in commits)}."]
    curve_png = _plot_curves(args, rows_all=_load_rows(args.out), per_ep_ret=per_ep_ret,
                             agents=list(agents_by_lib))
    if curve_png:
        lines += ["", f"![learning curve]({os.path.basename(curve_png)})"]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"config": cfg, "methods": summary, "comparisons": comparisons}, f, indent=1)
    return text


def _plot_curves(args: argparse.Namespace, rows_all: list[dict[str, Any]],
                 per_ep_ret: dict[str, dict[tuple[str, int], float]],
                 agents: list[str]) -> str | None:
    curve = [r for r in rows_all if r["set"] == "curve"]
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    seeds_used = sorted({r["reset_seed"] for r in curve})
    for lib in sorted({r["method"].split("_ddpg")[0] for r in curve}):
        by_seed: dict[int, dict[int, list[float]]] = {}
        for r in curve:
            if r["method"].startswith(f"{lib}_ddpg"):
                by_seed.setdefault(r["training_seed"], {}).setdefault(
                    r["episodes_trained"], []).append(r["episode_return"])
        xs = sorted(set.intersection(*[set(v) for v in by_seed.values()]))
        ys = np.array([[np.mean(by_seed[s][x]) for x in xs] for s in by_seed])
        ax.plot(xs, ys.mean(0), label=f"{lib} LAW-DDPG ({len(by_seed)} seeds)")
        ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
    ax.axhline(0.0, color="k", lw=1, label="uniform")
    curve_keys = {("heldout_episodes", s) for s in seeds_used}
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"][2:])
    for label, ret in per_ep_ret.items():
        if label in agents:
            continue
        vals = [v for e, v in ret.items() if e in curve_keys]
        if vals and label.split(":")[0] in ("mwnet", "gdw", "fsr", "nrt", "best_constant"):
            ax.axhline(float(np.mean(vals)), ls="--", lw=1, color=next(colors), label=label)
    ax.set_xlabel("training episodes")
    ax.set_ylabel(f"return on {len(seeds_used)} held-out episodes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(args.out, "learning_curve.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corruption", default="uniform", choices=("uniform", "pair_flip"))
    p.add_argument("--out", required=True)
    p.add_argument("--env-kwargs", default="{}", help="JSON object of env overrides")
    p.add_argument("--libs", default="sb3,rllib")
    p.add_argument("--train-seeds", default="0,1,2")
    p.add_argument("--episodes", type=int, default=250, help="training episodes per seed")
    p.add_argument("--select-seeds", default="0,1",
                   help="training seeds of each candidate in the select step")
    p.add_argument("--candidates", default="",
                   help="select step: only these candidates (comma-separated; default all), "
                        "e.g. another training seed for the closest ones")
    p.add_argument("--fixed", default="easy_first,hard_first,random,constant")
    p.add_argument("--baselines", default="mwnet,gdw,fsr,nrt",
                   help="meta-gradient methods; 'mwnet:defaults' (package defaults) or "
                        "'mwnet:meta_lr=0.001' (given options) name variants")
    p.add_argument("--curve-episodes", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cifar-root", default=cifar10_root(), help="CIFAR-10 for the transfer step")
    p.add_argument("--agent-kwargs", default="",
                   help="train step: agent settings over the defaults, as JSON (reweight-gym "
                        "train --agent-kwargs), e.g. a candidate of the select step")
    p.add_argument("--transfer-threads", type=int, default=2,
                   help="torch threads of each transfer episode")
    p.add_argument("--transfer-workers", type=int, default=1,
                   help="transfer episodes played at once")
    p.add_argument("--transfer-presets", default="cpu",
                   help="CIFAR-10 presets of the transfer step, comma-separated")
    p.add_argument("--steps", default=",".join(s for s in STEPS if s != "select"))
    args = p.parse_args(argv)
    args.libs = [x for x in args.libs.split(",") if x]
    args.train_seeds = [int(x) for x in args.train_seeds.split(",") if x]
    args.select_seeds = [int(x) for x in args.select_seeds.split(",") if x]
    args.transfer_presets = [x for x in args.transfer_presets.split(",") if x]
    args.candidates = [x for x in args.candidates.split(",") if x]
    args.fixed = [x for x in args.fixed.split(",") if x]
    args.baselines = [x for x in args.baselines.split(",") if x]
    steps = [s for s in args.steps.split(",") if s]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        p.error(f"unknown --steps {bad}: allowed: {', '.join(STEPS)}")
    if args.candidates and "select" not in steps:
        p.error(f"--candidates {','.join(args.candidates)} needs the select step (--steps select)")
    import torch

    import reweight_gym

    torch.set_num_threads(1)  # small MLPs: one thread each, parallelism across episodes
    reweight_gym.tune_cpu_allocator()
    os.makedirs(args.out, exist_ok=True)
    cfg = _config(args.corruption, json.loads(args.env_kwargs))
    commit = _git_commit()
    if "select" in steps:
        print(step_select(args, cfg, commit))
    if "train" in steps:
        step_train(args, cfg)
    if "search" in steps and "constant" in args.fixed:
        step_search(args, cfg)
    if "evaluate" in steps:
        step_evaluate(args, cfg, commit)
    if "curves" in steps:
        step_curves(args, cfg, commit)
    if "transfer" in steps:
        step_transfer(args, cfg, commit)
    if "report" in steps:
        print(step_report(args, cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
