"""LAW's Full Data Update (Li et al., AAAI 2020, Algorithm 1): the one definition of its schedule.

Both DDPG agents use it: SB3's :class:`~reweight_gym.agents.sb3.LAWDDPG` (``train``) and RLlib's
:class:`~reweight_gym.agents.rllib.DDPG` (``training_step``). Algorithm 1 alternates two phases:

1. *Search*: each of the N_a parallel searchers (SB3: the envs of a ``VecEnv``; RLlib: the env
   runners) runs one complete episode, i.e. one whole training run of the classifier, with the
   current policy plus exploration noise; the transitions go to one shared buffer. One episode
   per searcher is a *round*.
2. *Update*: the strategy model (actor and critic, eqs. 10-13) is trained on *all* transitions
   in the buffer for ``epochs`` epochs, not on one sampled minibatch.

The schedule, in episodes (a Reweight env's episodes all last ``num_stages - warmup_stages``
steps, :func:`episode_length`):

- while fewer than ``learning_starts_episodes`` episodes have been collected in total, actions
  are uniform random (:meth:`FDUSchedule.explores_randomly`);
- an update runs at the end of every round once more than ``learning_starts_episodes`` episodes
  are in (:meth:`FDUSchedule.update_due`). In SB3's step counts (:meth:`FDUSchedule.sb3_steps`):
  ``train_freq`` = one round = ``episode_length`` vector steps, ``learning_starts`` =
  ``learning_starts_episodes * episode_length`` transitions, and SB3's own rules (random actions
  while ``num_timesteps < learning_starts``, a train call when ``num_timesteps > learning_starts``
  at the end of a round) are exactly the two above;
- an update (:meth:`FDUSchedule.minibatches`) is ``epochs`` epochs; each epoch is a fresh
  permutation of the N buffered transitions, drawn from the schedule's own generator (seeded, and
  saved with the agent's checkpoints), cut into consecutive minibatches of ``batch_size`` (the
  last one shorter); one DDPG step per minibatch. Every buffered transition is therefore visited
  exactly ``epochs`` times per update.

LAW gives no epoch count or minibatch size; ``agents/defaults.py`` holds the values used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from reweight_gym.validation import check_number


class FDUSchedule:
    """When FDU updates happen and which minibatches they visit (module docstring).

    Args:
        epochs: epochs over all buffered transitions per update (``fdu_epochs``).
        batch_size: minibatch size inside an epoch (``fdu_batch_size``).
        learning_starts_episodes: episodes of uniform random exploration, summed over the
            searchers, before the first update.
        seed: seed of the generator of the minibatch permutations (``None``: from the OS).
    """

    def __init__(self, epochs: int, batch_size: int, learning_starts_episodes: int,
                 seed: int | None = None) -> None:
        check_number("fdu_epochs", epochs, 1, integer=True)
        check_number("fdu_batch_size", batch_size, 1, integer=True)
        check_number("learning_starts_episodes", learning_starts_episodes, 0, integer=True)
        check_number("seed", seed, 0, integer=True, optional=True)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_starts_episodes = int(learning_starts_episodes)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ when
    def explores_randomly(self, episodes_done: int) -> bool:
        """Whether an episode that starts after ``episodes_done`` episodes acts at random."""
        return episodes_done < self.learning_starts_episodes

    def update_due(self, episodes_done: int) -> bool:
        """Whether the round that brought the total to ``episodes_done`` ends with an update."""
        return episodes_done > self.learning_starts_episodes

    def sb3_steps(self, episode_length: int) -> tuple[int, int]:
        """SB3's ``(train_freq, learning_starts)``: one round in vector steps, and the
        exploration episodes in transitions (summed over the envs)."""
        check_number("episode_length", episode_length, 1, integer=True)
        return episode_length, self.learning_starts_episodes * episode_length

    # ------------------------------------------------------------------ what
    def minibatches(self, n: int) -> Iterator[np.ndarray]:
        """Index arrays into the ``n`` buffered transitions, in training order: ``epochs``
        permutations, each cut into minibatches of ``batch_size`` (the last one shorter)."""
        check_number("number of buffered transitions", n, 0, integer=True)
        for _ in range(self.epochs):
            perm = self.rng.permutation(n)
            for start in range(0, n, self.batch_size):
                yield perm[start:start + self.batch_size]

    def num_minibatches(self, n: int) -> int:
        """Gradient steps of one update over ``n`` transitions."""
        return self.epochs * -(-n // self.batch_size)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """The generator's state (for checkpoints; a resumed run draws the same permutations)."""
        return dict(self.rng.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def __repr__(self) -> str:
        return (f"FDUSchedule(epochs={self.epochs}, batch_size={self.batch_size}, "
                f"learning_starts_episodes={self.learning_starts_episodes})")


def visits(minibatches: list[np.ndarray], n: int) -> np.ndarray:
    """How many times each of ``n`` transitions entered a minibatch."""
    if not minibatches:
        return np.zeros(n, dtype=np.int64)
    return np.bincount(np.concatenate(minibatches), minlength=n).astype(np.int64)


def resolved_config(env_id: str, env_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a Reweight env id and its keywords resolve to, without loading data
    (:func:`reweight_gym.envs.resolve.resolve_env`); ``None`` for another env id."""
    from reweight_gym.envs.resolve import resolve_env

    return resolve_env(env_id, env_kwargs)


def episode_length(env: Any = None, env_id: str | None = None,
                   env_kwargs: dict[str, Any] | None = None) -> int | None:
    """Steps per episode: ``num_stages - warmup_stages`` for a Reweight env (from an env, a
    ``VecEnv``, or an id and its keyword arguments, resolved without loading data), else the
    env spec's ``max_episode_steps``; ``None`` when neither is known."""
    if env is not None:
        return _length_of_env(env)
    if env_id is None:
        return None
    import gymnasium as gym

    from reweight_gym.envs.resolve import env_episode_length

    steps = env_episode_length(env_id, env_kwargs)
    if steps is not None:
        return steps
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    return int(spec.max_episode_steps) if spec.max_episode_steps else None


def _length_of_env(env: Any) -> int | None:
    if hasattr(env, "get_attr") and hasattr(env, "num_envs"):  # an SB3 VecEnv
        cfg = _first_attr(env, "config")
        if cfg is not None and hasattr(cfg, "num_stages"):
            return int(cfg.num_stages - cfg.warmup_stages)
        spec = _first_attr(env, "spec")
    else:
        cfg = getattr(env.unwrapped, "config", None)
        if cfg is not None and hasattr(cfg, "num_stages"):
            return int(cfg.num_stages - cfg.warmup_stages)
        spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    return int(steps) if steps else None


def _first_attr(venv: Any, name: str) -> Any:
    # has_attr first: a SubprocVecEnv worker dies on a get_attr of a missing attribute
    if not venv.has_attr(name):
        return None
    return venv.get_attr(name, indices=[0])[0]
