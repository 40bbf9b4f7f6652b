"""Benchmark suites: grids of corruption settings mirroring the papers' tables.

A *setting* is a dict of environment keywords (the corruption); the preset supplies the sizes.
The same grids apply to CIFAR-10, CIFAR-100, digits and image folders.
"""

from __future__ import annotations

from typing import Any

from reweight_gym.runner.result import setting_id

SUITES: dict[str, list[dict[str, Any]]] = {
    # MW-Net / GDW / FSR / LAW tables: uniform noise 0, 20, 40, 60 %
    "uniform-noise": [{"noise_type": "uniform", "noise_rate": r} for r in (0.0, 0.2, 0.4, 0.6)],
    # MW-Net's flip noise (two random similar classes) 20, 40 %
    "flip-noise": [{"noise_type": "flip2", "noise_rate": r} for r in (0.2, 0.4)],
    # pair flip (Han et al.'s co-teaching; GDW's and FSR's tables): class c -> c+1, 20, 40 %
    "pair-flip": [{"noise_type": "pair_flip", "noise_rate": r} for r in (0.2, 0.4)],
    # long-tailed CIFAR (Cui et al.), imbalance factors 10, 50, 100, 200
    "long-tail": [{"noise_rate": 0.0, "imbalance_type": "long_tail", "imbalance_factor": f}
                  for f in (10.0, 50.0, 100.0, 200.0)],
    # noise on top of imbalance (FSR Table 7)
    "noisy-long-tail": [{"noise_type": "uniform", "noise_rate": r, "imbalance_type": "long_tail",
                         "imbalance_factor": f} for f in (10.0, 100.0) for r in (0.2, 0.4)],
}
SUITE_NAMES = tuple(SUITES)


def _coerce(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_filters(filters: list[str | dict[str, Any]] | None) -> list[dict[str, Any]]:
    """``["noise_rate=0.4,imbalance_factor=100", "noise_rate=0.2"]`` -> a list of AND-filters
    (a setting is selected when it matches any of them); a filter given as a dict is taken as
    it is."""
    out: list[dict[str, Any]] = []
    for f in filters or []:
        if isinstance(f, dict):
            out.append(dict(f))
            continue
        cond: dict[str, Any] = {}
        for part in f.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"invalid --settings {f!r}: expected key=value[,key=value]")
            k, v = part.split("=", 1)
            cond[k.strip()] = _coerce(v.strip())
        out.append(cond)
    return out


def select_settings(suite: str, filters: list[str | dict[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """The settings of ``suite`` matching any filter (all of them without filters)."""
    if suite not in SUITES:
        raise ValueError(f"invalid suite={suite!r}: allowed: {', '.join(SUITE_NAMES)}")
    grid = SUITES[suite]
    conds = parse_filters(filters)
    if not conds:
        return [dict(s) for s in grid]
    keys = set().union(*grid)
    for cond in conds:
        unknown = sorted(set(cond) - keys)
        if unknown:
            raise ValueError(f"invalid --settings key(s) {unknown} for suite {suite!r}: allowed: "
                             f"{', '.join(sorted(keys))}")
    chosen = [dict(s) for s in grid
              if any(all(_matches(s[k], v) for k, v in c.items()) for c in conds)]
    if not chosen:
        raise ValueError(f"invalid --settings {filters!r}: no setting of suite {suite!r} matches; "
                         f"the grid is {[setting_id(s) for s in grid]}")
    return chosen


def _matches(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-9
    return str(a) == str(b)
