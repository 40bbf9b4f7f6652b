"""The evaluation protocol of learned weighting policies.

Every agent number of the package (``benchmarks/agent_learning.py``, ``benchmarks/transfer.py``
and the tables generated from their results) follows it:

- **Training** episodes run on the training data draw (config ``seed`` = ``TRAIN_DATA_SEED``),
  with episode seeds drawn from the environment's own generator.
- **Validation** (choosing hyperparameters, environment options, the search's winner):
  ``VALIDATION_SEEDS`` episode seeds on the training data draw. Never the evaluation seeds.
- **Evaluation** (the reported numbers): ``EVALUATION_SEEDS`` episode seeds (initialisation,
  batch order) on the training data draw *and* on a held-out data draw (``HELDOUT_DATA_SEED``:
  another corruption and split), i.e. :func:`evaluation_sets`.
- ``TRAINING_SEEDS`` (3) training runs per agent; mean ± std over them.
- Every policy is played on the same episodes, so the weighted target net of every policy starts
  from the same parameters as the same unweighted reference, and differences are paired
  (:func:`paired_comparison`); uniform weighting's reward is exactly 0.

:func:`play` runs any weighting method (a baseline name, a fixed policy name, an agent with SB3's
``predict``, a constant action) for one episode with LAW's duplicate-network reward (eqs. 8-9)
against a live reference, exactly as ``gymnasium.make(id, **config).reset(seed=reset_seed)``
would. :func:`constant_action_search` is the strongest fixed-schedule baseline: the best
constant action found by successive halving with the same episode budget as an agent's training.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import gymnasium as gym
import numpy as np

from reweight_gym.agents.policies import ConstantPolicy
from reweight_gym.config import EnvConfig
from reweight_gym.envs.episode import Episode
from reweight_gym.envs.observation import action_space, episode_seed, observation_space
from reweight_gym.runner.controllers import PolicyController, make_controller
from reweight_gym.validation import check_number

TRAIN_DATA_SEED = 0
HELDOUT_DATA_SEED = 1
TRAINING_SEEDS: tuple[int, ...] = (0, 1, 2)
VALIDATION_SEEDS: tuple[int, ...] = tuple(range(5000, 5006))
EVALUATION_SEEDS: tuple[int, ...] = tuple(range(10_000, 10_005))
#: episode seeds of the constant-action search: disjoint from validation and evaluation
SEARCH_SEED_RANGE = (0, 5000)


@dataclass(frozen=True)
class EpisodeSet:
    """Episodes to play: a config (with its data ``seed``) and the reset seeds."""

    name: str
    config: dict[str, Any]
    reset_seeds: tuple[int, ...]


def validation_set(config: dict[str, Any]) -> EpisodeSet:
    """The episodes on which settings are chosen (training data draw)."""
    return EpisodeSet("validation", {**config, "seed": TRAIN_DATA_SEED}, VALIDATION_SEEDS)


def evaluation_sets(config: dict[str, Any]) -> list[EpisodeSet]:
    """The reported episodes: held-out episode seeds on the training data draw, and the same
    seeds on the held-out data draw."""
    return [EpisodeSet("heldout_episodes", {**config, "seed": TRAIN_DATA_SEED}, EVALUATION_SEEDS),
            EpisodeSet("heldout_data", {**config, "seed": HELDOUT_DATA_SEED}, EVALUATION_SEEDS)]


def spaces(cfg: EnvConfig, num_classes: int) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The observation and action spaces of the env of ``cfg``."""
    return observation_space(cfg), action_space(cfg, num_classes)


@dataclass
class Outcome:
    """One episode of one method: LAW's return (sum of eq. 8 rewards), final test accuracies of
    the weighted target and the uniform reference (the same for every method on an episode), mean
    weights of noisy and clean samples, the actions of a policy."""

    method: str
    reset_seed: int
    data_seed: int
    episode_return: float
    test_acc_target: float
    test_acc_reference: float
    noisy_weight_mean: float | None
    clean_weight_mean: float | None
    diverged: bool
    actions: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def play(method: str | Any, config: dict[str, Any], reset_seed: int, *, dataset: str = "digits",
         preset: str = "tiny", method_kwargs: dict[str, Any] | None = None,
         label: str | None = None) -> Outcome:
    """Play one episode of ``method`` (a baseline or fixed-policy name, a checkpoint path, or an
    object with SB3's ``predict``) on the env of ``config``, reset with ``reset_seed``."""
    cfg = EnvConfig.resolve(dataset, preset, **config)
    episode = Episode(cfg, seed=episode_seed(reset_seed), reference="live")
    if isinstance(method, str):
        trainer = episode.trainer
        controller = make_controller(method, cfg, trainer.splits.num_classes, trainer.seed,
                                     method_kwargs)
        name = label or method
    else:
        controller = PolicyController(method, cfg)
        name = label or type(method).__name__
    total, noisy, clean = 0.0, [], []
    for result in episode.play(controller.weigher_for_stage):
        if result.weighted or result.diverged:
            total += result.reward
        if result.weighted and not result.diverged:
            noisy.append(result.stats.noisy_weight_mean)
            clean.append(result.stats.clean_weight_mean)
    final = episode.finish()
    return Outcome(name, int(reset_seed), int(cfg.seed), float(total),
                   float(final["test_acc_target"]), float(final["test_acc_reference"]),
                   _mean(noisy), _mean(clean), bool(episode.diverged),
                   list(controller.actions or []))


# ---------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """``a - b`` over paired episodes: mean and std of the differences, wins/ties/losses, the
    two-sided paired t-test and the exact two-sided sign test p-values."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired_comparison needs two equal-length 1-D sequences, got shapes "
                         f"{x.shape} and {y.shape}")
    d = x - y
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    n_signed = wins + losses
    sign_p = (float(stats.binomtest(wins, n_signed, 0.5).pvalue) if n_signed else 1.0)
    if len(d) > 1 and d.std(ddof=1) > 0:
        t_p = float(stats.ttest_1samp(d, 0.0).pvalue)
    else:
        t_p = 1.0 if np.all(d == 0) else 0.0
    m, s = mean_std(d)
    return {"n": len(d), "mean_diff": m, "std_diff": s, "wins": wins,
            "ties": int(len(d) - n_signed), "losses": losses, "t_test_p": t_p,
            "sign_test_p": sign_p}


# ---------------------------------------------------------------------- constant-action search
def halving_rounds(budget_episodes: int, eta: int) -> list[tuple[int, int]]:
    """Successive halving's plan for a budget: R rounds of ``budget // R`` episodes each, R as
    large as leaves at least 2 candidates in the last; round r keeps ``n0 // eta**r`` candidates
    and plays each on ``budget // R // kept`` episodes. Returns (candidates, episodes each)."""
    check_number("budget_episodes", budget_episodes, 2, integer=True)
    check_number("eta", eta, 2, integer=True)
    n_rounds = 1
    while (budget_episodes // (n_rounds + 1)) // eta ** n_rounds >= 2:
        n_rounds += 1
    per_round = budget_episodes // n_rounds
    kept = [max(2, per_round // eta ** r) for r in range(n_rounds)]
    return [(n, max(1, per_round // n)) for n in kept]


def successive_halving(action_dim: int, budget_episodes: int, seed: int, eta: int,
                       draw: Callable[[np.random.Generator, int], list[Any]],
                       play: Callable[[int, np.ndarray, Any], float],
                       log_path: str | None = None) -> dict[str, Any]:
    """The best constant action by successive halving (:func:`halving_rounds`). Round 0
    samples candidates uniformly from [-1, 1]^``action_dim``; each round plays every surviving
    candidate on the same ``draw(rng, n)`` episodes (paired) with ``play(candidate, action,
    episode) -> return``; the winner has the best mean return over all its episodes. Finished
    episodes are appended to ``log_path`` (JSON lines, keyed by candidate and episode) and
    reused on a rerun: the search resumes."""
    rounds = halving_rounds(budget_episodes, eta)
    rng = np.random.default_rng(seed)
    candidates = rng.uniform(-1.0, 1.0, size=(rounds[0][0], action_dim))
    done: dict[tuple[int, str], float] = {}
    if log_path and os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                row = json.loads(line)
                ep = row["episode"] if "episode" in row else row["reset_seed"]  # older logs
                done[(row["candidate"], json.dumps(ep))] = row["episode_return"]
    returns: dict[int, list[float]] = {i: [] for i in range(len(candidates))}
    alive = list(range(len(candidates)))
    for r, (n_keep, per) in enumerate(rounds):
        if r > 0:
            alive = sorted(alive, key=lambda i: -float(np.mean(returns[i])))[:n_keep]
        episodes = draw(rng, per)
        for i in alive:
            for ep in episodes:
                key = (i, json.dumps(ep))
                if key not in done:
                    done[key] = float(play(i, candidates[i], ep))
                    if log_path:
                        with open(log_path, "a") as f:
                            f.write(json.dumps({"candidate": i, "episode": ep, "round": r,
                                                "action": candidates[i].tolist(),
                                                "episode_return": done[key]}) + "\n")
                returns[i].append(done[key])
    best = max(alive, key=lambda i: float(np.mean(returns[i])))
    return {"action": candidates[best].tolist(), "candidate": int(best),
            "mean_search_return": float(np.mean(returns[best])),
            "search_episodes": int(sum(len(v) for v in returns.values())),
            "rounds": [list(x) for x in rounds]}


def constant_action_search(config: dict[str, Any], budget_episodes: int, seed: int = 0, *,
                           dataset: str = "digits", preset: str = "tiny", eta: int = 4,
                           log_path: str | None = None,
                           play_fn: Callable[..., Outcome] = play) -> dict[str, Any]:
    """The best constant action on one config with ``budget_episodes`` episodes
    (:func:`successive_halving`); episode seeds from ``SEARCH_SEED_RANGE`` (never validation
    or evaluation seeds)."""
    cfg = EnvConfig.resolve(dataset, preset, **config)
    from reweight_gym.data import build_splits

    obs_space, act_space = spaces(cfg, build_splits(cfg).num_classes)
    low, high = SEARCH_SEED_RANGE

    def draw(rng: np.random.Generator, n: int) -> list[Any]:
        return [int(s) for s in rng.integers(low, high, size=n)]

    def run_one(i: int, action: np.ndarray, reset_seed: Any) -> float:
        policy = ConstantPolicy(obs_space, act_space, action)
        return play_fn(policy, config, reset_seed, dataset=dataset, preset=preset,
                       label=f"constant{i}").episode_return

    return successive_halving(act_space.shape[0], budget_episodes, seed, eta, draw, run_one,
                              log_path)


def constant_action_search_set(instance_set: Any, budget_episodes: int, seed: int = 0, *,
                               eta: int = 4, log_path: str | None = None,
                               env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The best constant action on an instance set (the training set) with the same episode
    budget as an agent's training (:func:`successive_halving`): each round's episodes are drawn
    from the set's instances and their episode seeds, and played on ``Reweight-Instances-v0``
    with ``env_kwargs`` (``data_root``, ``reference_cache``: a cached reference makes the
    search's episodes as cheap as an agent's)."""
    import reweight_gym  # noqa: F401  (registration)
    from reweight_gym.envs import INSTANCES_ENV_ID
    from reweight_gym.envs.instances import load_instance_set

    s = load_instance_set(instance_set)
    env = gym.make(INSTANCES_ENV_ID, instance_set=s.to_dict(), **dict(env_kwargs or {}))
    pool = [(inst.name, int(x)) for inst in s.instances for x in inst.episode_seeds]

    def draw(rng: np.random.Generator, n: int) -> list[Any]:
        return [list(pool[int(k)]) for k in rng.integers(0, len(pool), size=n)]

    def run_one(i: int, action: np.ndarray, episode: Any) -> float:
        env.reset(seed=0, options={"instance": episode[0], "instance_seed": episode[1]})
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(np.asarray(action, np.float32))
            total += float(r)
            done = term or trunc
        return total

    try:
        n_actions = cast(gym.spaces.Box, env.action_space).shape[0]
        return successive_halving(n_actions, budget_episodes, seed, eta, draw, run_one, log_path)
    finally:
        env.close()
