#!/usr/bin/env bash
# The CIFAR-10 tables (docs: results/cifar10.md): `cpu` preset on the JPEG copy, 40% uniform noise (3 seeds, every
# method) and long-tail imbalance factor 100 (uniform, class_balanced, focal, mwnet, gdw; 3 seeds),
# through `reweight-gym benchmark` (resumable: rerun to continue). The tables of 2026-11-22 (code
# before the run-length defaults, the FSR / SPL / NRT changes and the long-tail meta set of 10
# images per class) and their diagnostic runs (weight-net SGD 1e-3 on long tail, FSR's
# `clip_code` rule and re-labelling + MixUp) are kept in benchmarks/results/cifar10-cpu-2026-11-22/,
# made by this script as it stood then (commit 3e279ba has that version; the rows predate provenance).
set -euo pipefail
ROOT=${REWEIGHT_GYM_CIFAR10:-../shared/datasets/cifar10-jpeg}  # as benchmarks/common.py
OUT=${OUT:-benchmarks/results/cifar10-cpu}
SEEDS=${SEEDS:-3}
LT_SEEDS=${LT_SEEDS:-3}
COMMON=(--dataset cifar10 --data-root "$ROOT" --preset cpu --threads "${THREADS:-1}" --quiet
        --no-report)
reweight-gym benchmark "${COMMON[@]}" --suite uniform-noise --settings noise_rate=0.4 \
    --methods uniform,mwnet,gdw,fsr,nrt,focal,class_balanced,spl --seeds "$SEEDS" \
    --out "$OUT/noise40"
reweight-gym benchmark "${COMMON[@]}" --suite long-tail --settings imbalance_factor=100 \
    --methods uniform,class_balanced,focal,mwnet,gdw --seeds "$LT_SEEDS" --out "$OUT/longtail100"
for d in noise40 longtail100; do
    reweight-gym report "$OUT/$d" > /dev/null
done
