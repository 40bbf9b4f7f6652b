#!/usr/bin/env bash
# The README's CIFAR-10 table: `cpu` preset on the JPEG copy, 40% uniform noise and long-tail
# imbalance factor 100, through `reweight-gym benchmark` (resumable: rerun to continue).
set -euo pipefail
ROOT=${CIFAR10_ROOT:-../shared/datasets/cifar10-jpeg}
OUT=${OUT:-benchmarks/results/cifar10-cpu}
SEEDS=${SEEDS:-1}
reweight-gym benchmark --dataset cifar10 --data-root "$ROOT" --preset cpu --suite uniform-noise \
    --settings noise_rate=0.4 --methods uniform,mwnet,gdw,fsr,nrt,focal,class_balanced,spl \
    --seeds "$SEEDS" --threads "${THREADS:-1}" --quiet --no-report --out "$OUT/noise40"
reweight-gym benchmark --dataset cifar10 --data-root "$ROOT" --preset cpu --suite long-tail \
    --settings imbalance_factor=100 --methods uniform,class_balanced,mwnet,gdw,focal \
    --seeds "$SEEDS" --threads "${THREADS:-1}" --quiet --no-report --out "$OUT/longtail100"
reweight-gym benchmark --dataset cifar10 --data-root "$ROOT" --preset cpu --suite uniform-noise \
    --settings noise_rate=0.0 --methods uniform --seeds "$SEEDS" --threads "${THREADS:-1}" \
    --quiet --no-report --out "$OUT/clean"
for d in noise40 longtail100 clean; do reweight-gym report "$OUT/$d" > /dev/null; done
