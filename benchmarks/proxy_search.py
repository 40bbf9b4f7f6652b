"""The search for the CIFAR-10 proxy preset (issue 24.3): candidate configurations of
CIFAR-10 at 40% uniform noise (subset, resolution, network, epochs, schedule), each trained with
``uniform`` (and ``mwnet`` / ``gdw`` where asked) through :func:`reweight_gym.runner.run`, on the
``cpu-noaug`` preset's base with the candidate's keywords on top. Each run is appended to
``benchmarks/results/presets/proxy_search.jsonl``: the final test accuracy, the test accuracy at
the best-validation epoch (their difference: does plain training memorise?), the final
validation accuracy, the run's seconds (one network, with a test evaluation after every epoch)
and the test curve.

    python -m benchmarks.proxy_search CANDIDATE[,CANDIDATE] METHOD[,METHOD] SEED[,SEED]
    python -m benchmarks.proxy_search X16e120 uniform,mwnet,gdw 0,1,2
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.common import RESULTS, cifar10_root

BASE = dict(
    noise_type="uniform",
    noise_rate=0.4,
    model_kwargs={"width": 8},
    batch_size=64,
    val_size=500,
    meta_size=200,
    test_size=2000,
    num_stages=10,
    warmup_stages=1,
)
CANDIDATES = {
    "AA": dict(
        image_size=16,
        train_size=1000,
        epochs=120,
        batch_size=128,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "AB": dict(
        image_size=16,
        train_size=2000,
        epochs=100,
        batch_size=128,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "AC": dict(
        image_size=16,
        train_size=1000,
        epochs=120,
        batch_size=128,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        lr_schedule="step",
        val_size=1000,
    ),
    "X16e120": dict(
        image_size=16,
        train_size=2000,
        epochs=120,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    # X16e120's best validation epoch comes within its first stage (epochs 0-3 of 120: the warm-up,
    # unweighted for every method), so no weighting can recover it; a lower learning rate moves
    # the peak past the warm-up
    "X16lr01": dict(
        image_size=16,
        train_size=2000,
        epochs=120,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.01,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "X16lr003": dict(
        image_size=16,
        train_size=2000,
        epochs=120,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.003,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    # X16lr01 still peaks at epoch 6 (inside its 12-epoch warm-up): a 30-epoch run has 3-epoch
    # stages, so the weighting starts before the peak (and the episode costs a quarter)
    "X16lr01e30": dict(
        image_size=16,
        train_size=2000,
        epochs=30,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.01,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "X16lr003e40": dict(
        image_size=16,
        train_size=2000,
        epochs=40,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.003,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "X16step02": dict(
        image_size=16,
        train_size=2000,
        epochs=120,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.02,
        weight_decay=0.0,
        lr_schedule="step",
        val_size=1000,
    ),
    "W16lr01": dict(
        image_size=16,
        train_size=4000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.01,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "X32e60": dict(
        image_size=32,
        train_size=2000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "X16": dict(
        image_size=16,
        train_size=2000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "Y32": dict(
        image_size=32,
        train_size=2000,
        epochs=40,
        model_kwargs={"width": 8},
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "Z16": dict(
        image_size=16,
        train_size=2000,
        epochs=40,
        model_kwargs={"width": 16},
        weight_decay=0.0,
        lr_schedule="cosine",
        val_size=1000,
    ),
    "U16": dict(
        image_size=16,
        train_size=2000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
    ),
    "V16": dict(
        image_size=16,
        train_size=2000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [256, 256]},
        lr=0.05,
        weight_decay=0.0,
    ),
    "W16": dict(
        image_size=16,
        train_size=4000,
        epochs=60,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
        weight_decay=0.0,
    ),
    "R16": dict(
        image_size=16,
        train_size=2000,
        epochs=40,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
    ),
    "S16": dict(
        image_size=16,
        train_size=4000,
        epochs=40,
        model="mlp",
        model_kwargs={"hidden": [256, 256]},
        lr=0.05,
    ),
    "T32": dict(
        image_size=32,
        train_size=2000,
        epochs=40,
        model="mlp",
        model_kwargs={"hidden": [512, 512]},
        lr=0.05,
    ),
    "P16": dict(
        image_size=16,
        train_size=2000,
        epochs=40,
        model="mlp",
        model_kwargs={"hidden": [256, 256]},
        lr=0.05,
    ),
    "Q16": dict(image_size=16, train_size=1000, epochs=100, model_kwargs={"width": 8}),
    "M32": dict(image_size=32, train_size=1000, epochs=60, model_kwargs={"width": 8}),
    "N32": dict(image_size=32, train_size=800, epochs=75, model_kwargs={"width": 8}),
    "O16": dict(image_size=16, train_size=1000, epochs=120, model_kwargs={"width": 8}),
    "J32": dict(
        image_size=32, train_size=2000, epochs=30, model_kwargs={"width": 8}, weight_decay=0.0
    ),
    "K32": dict(
        image_size=32, train_size=2000, epochs=20, model_kwargs={"width": 8}, weight_decay=0.0
    ),
    "L16": dict(
        image_size=16, train_size=2000, epochs=30, model_kwargs={"width": 16}, weight_decay=0.0
    ),
    "G16": dict(image_size=16, train_size=2000, epochs=60, model_kwargs={"width": 8}),
    "H16": dict(image_size=16, train_size=2000, epochs=60, model_kwargs={"width": 16}),
    "I32": dict(image_size=32, train_size=2000, epochs=40, model_kwargs={"width": 8}),
    "D16": dict(image_size=16, train_size=2500, epochs=30, model_kwargs={"width": 16}),
    "E16": dict(
        image_size=16, train_size=2000, epochs=30, model_kwargs={"width": 16}, batch_size=100
    ),
    "F16": dict(image_size=16, train_size=2000, epochs=40, model_kwargs={"width": 12}),
    "A16": dict(image_size=16, train_size=2000, epochs=20),
    "B16": dict(image_size=16, train_size=4000, epochs=20),
    "C32": dict(image_size=32, train_size=2000, epochs=20),
}


def main(argv: list[str] | None = None) -> int:
    import torch

    from reweight_gym.runner import RunSpec, run

    args = sys.argv[1:] if argv is None else argv
    names, methods, seeds = args[0].split(","), args[1].split(","), args[2].split(",")
    torch.set_num_threads(1)
    out = RESULTS / "presets" / "proxy_search.jsonl"
    for n in names:
        for s in (int(x) for x in seeds):
            ref = None
            for m in methods:
                spec = RunSpec(
                    "cifar10",
                    "custom",
                    {},
                    m,
                    s,
                    "cpu-noaug",
                    cifar10_root(),
                    {**BASE, **CANDIDATES[n]},
                )
                t = time.time()
                r = run(spec, ref if m != "uniform" else None)
                if m == "uniform":
                    ref = r
                row = dict(
                    cand=n,
                    method=m,
                    seed=s,
                    final=r.final_test_acc,
                    best_val_test=r.test_acc_at_best_val,
                    final_val=r.val_acc_curve[-1],
                    best_val_epoch=max(range(len(r.val_acc_curve)),
                                       key=r.val_acc_curve.__getitem__),
                    sec=r.seconds,
                    wall=time.time() - t,
                    curve=[round(x, 3) for x in r.test_acc_curve],
                )
                with open(out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(
                    n,
                    m,
                    s,
                    f"final {r.final_test_acc:.4f} best-val test "
                    f"{r.test_acc_at_best_val:.4f} gap "
                    f"{100 * (r.test_acc_at_best_val - r.final_test_acc):+.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
