"""Why the agents' env differs from LAW's exact formulation: constant actions on both.

Plays a few constant actions on the protocol's validation episodes (``agents/protocol.py``;
the demo's setting: digits, 40% uniform noise, 100 epochs) under LAW's formulation
(``LAW_FORMULATION``: eq. 6 features, raw weights K = 1 + tanh(theta . f + b) of eq. 3) and under
the package defaults (class-count-free features, K divided by its batch mean), and prints each
one's return and test-accuracy gain over uniform (paired, same episodes):

- ``shrink``: theta = 0, b = -0.5: every sample gets the same weight 1 + tanh(-0.5) = 0.54.
  No sample is preferred to another; under raw weights it only scales the learning rate.
- ``easy_first``: theta_loss = -1, b = 0 (weight decreasing in the loss).
- ``easy_first_shrink``: theta_loss = -1, b = -0.5.

    python -m benchmarks.env_formulation   # writes benchmarks/results/agents/
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch

from reweight_gym.agents.protocol import (
    ConstantPolicy,
    mean_std,
    paired_comparison,
    play,
    spaces,
    validation_set,
)
from reweight_gym.config import LAW_FORMULATION, EnvConfig
from reweight_gym.experiments import DEMO
from reweight_gym.training.characteristics import feature_names

FORMULATIONS: dict[str, dict[str, Any]] = {
    "law": dict(LAW_FORMULATION),
    "default": {"features": "agnostic", "normalize_weights": True},
}
ACTIONS: dict[str, dict[str, float]] = {
    "shrink": {"b": -0.5},
    "easy_first": {"loss": -1.0},
    "easy_first_shrink": {"loss": -1.0, "b": -0.5},
}


def action_vector(spec: dict[str, float], names: list[str]) -> np.ndarray:
    a = np.zeros(len(names) + 1)
    for k, v in spec.items():
        a[-1 if k == "b" else names.index(k)] = v
    return a


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/agents/env_formulation.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base = dict(DEMO.env)
    rows: list[dict[str, Any]] = []
    if os.path.exists(args.out):
        with open(args.out) as f:
            rows = json.load(f)["episodes"]
    done = {(r["formulation"], r["action"], r["reset_seed"]) for r in rows}
    for form, overrides in FORMULATIONS.items():
        es = validation_set({**base, **overrides})
        cfg = EnvConfig.resolve("digits", "tiny", **es.config)
        names = feature_names(cfg.features, 10)
        obs_space, act_space = spaces(cfg, 10)
        for act_name, spec in ACTIONS.items():
            for s in es.reset_seeds:
                if (form, act_name, s) in done:
                    continue
                t0 = time.perf_counter()
                policy = ConstantPolicy(obs_space, act_space, action_vector(spec, names))
                out = play(policy, es.config, s, label=act_name)
                rows.append({"formulation": form, "action": act_name, "reset_seed": s,
                             "episode_return": out.episode_return,
                             "test_acc_target": out.test_acc_target,
                             "test_acc_reference": out.test_acc_reference,
                             "seconds": time.perf_counter() - t0})
                os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
                with open(args.out, "w") as f:
                    json.dump({"config": base, "formulations": FORMULATIONS,
                               "actions": ACTIONS, "episodes": rows}, f, indent=1)
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{len(es.reset_seeds)} validation episodes per cell (paired against uniform):")
    print("| formulation | action | return | Δ test acc vs uniform (pts) | p (t) |")
    print("|---|---|---|---|---|")
    for form in FORMULATIONS:
        for act_name in ACTIONS:
            sel = [r for r in rows if r["formulation"] == form and r["action"] == act_name]
            if not sel:
                continue
            m, s = mean_std([r["episode_return"] for r in sel])
            pc = paired_comparison([r["test_acc_target"] for r in sel],
                                   [r["test_acc_reference"] for r in sel])
            print(f"| {form} | {act_name} | {m:.1f} ± {s:.1f} | {100 * pc['mean_diff']:+.2f} ± "
                  f"{100 * pc['std_diff']:.2f} | {pc['t_test_p']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
