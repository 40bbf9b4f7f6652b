"""The shape of MW-Net's weight net V at initialisation, per benchmark seed (long tail).

At the paper's long-tail optimiser (SGD 1e-5) V barely moves in a `cpu`-preset run, so its
initial shape decides whether rare (high-loss) classes get more or less weight. This prints
V(l) at initialisation for the seeds of ``reweight-gym benchmark`` (the trainer and weigher
seeding of the benchmark runner; no training):

    python -m benchmarks.mwnet_init_shape --seeds 3 \
        [--data-root DIR]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import cifar10_root
from reweight_gym.baselines import make_weigher
from reweight_gym.baselines.meta import draw_seed
from reweight_gym.config import EnvConfig
from reweight_gym.envs.observation import episode_seed
from reweight_gym.training import DuplicateTrainer

LOSSES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-root", default=cifar10_root(),
                    help="CIFAR-10 (default: $REWEIGHT_GYM_CIFAR10 or ../shared)")
    ap.add_argument("--imbalance-factor", type=float, default=100.0)
    args = ap.parse_args(argv)
    cfg = EnvConfig.resolve(args.dataset, "cpu", data_root=args.data_root,
                            imbalance_type="long_tail", imbalance_factor=args.imbalance_factor)
    x = torch.tensor(LOSSES)[:, None]
    print("seed  " + "  ".join(f"V({v:g})" for v in LOSSES) + "  V(3)/V(0.5)")
    for seed in range(args.seeds):
        run = DuplicateTrainer(cfg, seed=episode_seed(seed), with_reference=False)
        weigher = make_weigher("mwnet", cfg)
        weigher.build(draw_seed(run.weigher_gen), run.splits.num_classes)  # as at iteration 0
        assert weigher.net is not None
        with torch.no_grad():
            v = weigher.net(x)
        print(f"{seed:4d}  " + "  ".join(f"{float(w):6.3f}" for w in v)
              + f"  {float(v[LOSSES.index(3.0)] / v[0]):11.2f}")


if __name__ == "__main__":
    main()
