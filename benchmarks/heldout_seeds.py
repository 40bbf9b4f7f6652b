"""Held-out seeds of the ``cpu-noaug`` CIFAR-10 tables (issue 29.16): does each method's gain
over plain training, measured on the seeds its settings were chosen on (0-2), hold on seeds
nobody looked at (3-5)?

Each ``<setting>-heldout/`` directory under ``benchmarks/results/cifar10-cpu-noaug/`` holds the
rows of the table's seeds 0-2 (copied from ``<setting>/``, the same runs) and the runs of seeds
3-5, made with the same command and method keywords as the table's rows (``COMMANDS`` below).
For every method and setting this script writes, from the stored rows only, the paired gain
over uniform (the same seed's uniform run: same data, noise draw and initialisation) of the
final test accuracy and of the test accuracy at the best-validation epoch, on the chosen seeds,
on the held-out seeds and on all six (mean ± sample std, wins, two-sided paired t-test), and how
far the held-out mean moved from the chosen seeds' mean.

    python -m benchmarks.heldout_seeds   # writes heldout_seeds.md in cifar10-cpu-noaug/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import RESULTS, markdown_table, mean_std
from reweight_gym.agents.protocol import paired_comparison
from reweight_gym.benchmark.store import load_rows

ROOT = RESULTS / "cifar10-cpu-noaug"
CHOSEN, HELD_OUT = (0, 1, 2), (3, 4, 5)
#: setting directory -> (what it is, the command that made its seeds, run from the repository root
#: with ../shared beside it and resuming the stored directory; the table's rows ran with the same
#: preset, overrides and method keywords)
_BASE = ("reweight-gym benchmark --dataset cifar10 --data-root ../shared/datasets/cifar10-jpeg "
         "--preset cpu --env-kwargs '{\"crop_padding\":0,\"flip\":false}' --threads 1 --seeds 6")
_FSR = '"rule":"clip_code","lookahead_lr":0.1'
SETTINGS: dict[str, tuple[str, str, str]] = {
    "noise40-heldout": (
        "40% uniform noise",
        f"{_BASE} --suite uniform-noise --settings noise_rate=0.4 "
        "--methods uniform,gdw,nrt,fsr "
        f"--method-kwargs '{{\"fsr\":{{{_FSR}}}}}' --out "
        "benchmarks/results/cifar10-cpu-noaug/noise40-heldout",
        "MW-Net's and the full FSR's seeds 3-5 ran earlier, with the keywords their seeds 0-2 ran "
        "with (their defaults then)."),
    "pairflip40-heldout": (
        "40% pair flip",
        f"{_BASE} --suite pair-flip --settings noise_rate=0.4 "
        "--methods uniform,gdw,nrt,fsr,fsr_relabel_mixup "
        f"--method-kwargs '{{\"fsr\":{{{_FSR}}},\"fsr_relabel_mixup\":{{{_FSR},"
        "\"relabel_ema\":\"probs\"}}' --out "
        "benchmarks/results/cifar10-cpu-noaug/pairflip40-heldout",
        "MW-Net's seeds 3-5 ran earlier. The full FSR runs with `relabel_ema=\"probs\"`, what "
        "its seeds 0-2 ran with (the default before issue 29.13)."),
    "longtail100-heldout": (
        "long tail, imbalance factor 100",
        f"{_BASE} --suite long-tail --settings imbalance_factor=100 "
        "--methods uniform,mwnet,gdw,class_balanced --out "
        "benchmarks/results/cifar10-cpu-noaug/longtail100-heldout", ""),
}


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _ms(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{100 * m:+.2f} ± {100 * s:.2f}"


def setting_table(directory: Path, expected: set[str]) -> tuple[str, list[str]]:
    """The Markdown table of one setting, and the methods of ``expected`` (the table's) whose
    held-out seeds are missing."""
    rows = load_rows(directory)
    acc: dict[tuple[str, int], tuple[float, float]] = {}
    for r in rows:
        assert r.final_test_acc is not None and r.test_acc_at_best_val is not None
        acc[(r.method, r.seed)] = (r.final_test_acc, r.test_acc_at_best_val)
    methods = sorted(({m for m, _ in acc} | expected) - {"uniform"})
    lines, missing = [], []
    for method in methods:
        seeds = [s for s in CHOSEN + HELD_OUT if (method, s) in acc and ("uniform", s) in acc]

        def gains(which: int, among: tuple[int, ...] | list[int], method: str = method,
                  seeds: list[int] = seeds) -> list[float]:
            return [acc[(method, s)][which] - acc[("uniform", s)][which]
                    for s in among if s in seeds]

        chosen, held, every = gains(0, CHOSEN), gains(0, HELD_OUT), gains(0, seeds)
        if len(held) < len(HELD_OUT):  # a row that says so, in the table a page includes
            missing.append(method)
            done = f"{_ms(chosen)} ({sum(g > 0 for g in chosen)}/{len(chosen)})" if chosen \
                else "–"
            lines.append([method, done, f"not run yet ({len(held)} of {len(HELD_OUT)})",
                          "–", "–", "–", "–"])
            continue
        pc = paired_comparison([acc[(method, s)][0] for s in seeds],
                               [acc[("uniform", s)][0] for s in seeds])
        moved = mean_std(held)[0] - mean_std(chosen)[0]
        lines.append([
            method, f"{_ms(chosen)} ({sum(g > 0 for g in chosen)}/{len(chosen)})",
            f"{_ms(held)} ({sum(g > 0 for g in held)}/{len(held)})", _pts(moved),
            f"{_ms(every)} ({pc['wins']}/{pc['n']}, p={pc['t_test_p']:.3f})",
            f"{_ms(gains(1, HELD_OUT))}",
            " / ".join(f"{100 * acc[(method, s)][0]:.2f}" for s in HELD_OUT)])
    uniform = " / ".join(f"{100 * acc[('uniform', s)][0]:.2f}" for s in HELD_OUT
                         if ("uniform", s) in acc)
    table = markdown_table(
        ["method", "gain, seeds 0-2 (wins)", "gain, held-out 3-5 (wins)", "moved",
         "gain, all six (wins, paired t)", "best-val epoch gain, 3-5", "final test, 3-5 (%)"],
        lines)
    return f"{table}\n\nUniform's final test accuracy on seeds 3-5: {uniform} %.", missing


def write(out: Path) -> str:
    parts = ["# Held-out seeds of the `cpu-noaug` tables", "",
             "Written by `python -m benchmarks.heldout_seeds` from the stored rows. Gains are "
             "paired differences to the same seed's uniform run, in points of test accuracy "
             "(mean ± sample std over the seeds; wins = seeds above uniform). The methods' "
             "settings were chosen on seeds 0-2 (MW-Net's and FSR's on their final validation "
             "accuracy); seeds 3-5 were not looked at before. \"moved\" = held-out mean minus "
             "the mean on seeds 0-2. \"best-val epoch gain\": the same at the epoch with the "
             "best validation accuracy.", ""]
    for name, (what, command, note) in SETTINGS.items():
        directory = ROOT / name
        parts += [f"## {what} (`{name}/`)", ""]
        if not (directory / "results.jsonl").exists():
            parts += ["Not run yet.", ""]
            continue
        table_dir = ROOT / name.removesuffix("-heldout")
        expected = {r.method for r in load_rows(table_dir)} if table_dir.exists() else set()
        table, missing = setting_table(directory, expected)
        parts += [table, ""]
        if missing:
            parts += [f"Held-out seeds not run yet: {', '.join(missing)}.", ""]
        parts += ["```bash", command, "```", ""] + ([note, ""] if note else [])
    text = "\n".join(parts)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "heldout_seeds.md")
    args = p.parse_args(argv)
    print(write(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
