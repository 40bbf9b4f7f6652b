"""ReweightEnv: LAW's stage-based sample-weighting MDP with the duplicate-network reward."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from reweight_gym.allocator import allocator_mode
from reweight_gym.config import EnvConfig, known_classes
from reweight_gym.data.splits import DataSplits, build_splits
from reweight_gym.envs.episode import Episode, ReferenceTrace
from reweight_gym.envs.instances import InstanceSet, load_instance_set
from reweight_gym.envs.observation import action_space, episode_seed, observation_space
from reweight_gym.envs.reference_cache import CachedReference, ReferenceCache, reference_key
from reweight_gym.training.characteristics import feature_dim, feature_names
from reweight_gym.training.weigher import LinearTanhWeigher


class ReweightEnv(gym.Env):
    """Learning to Auto Weight (LAW, Li et al., AAAI 2020) as a Gymnasium environment.

    ## Description
    One episode is one complete training run of an image classifier on biased data (label noise
    and/or class imbalance), split uniformly into ``num_stages`` stages (3SM). At every step the
    agent chooses the parameters θ, b of the sample-weighting function
    K(f, θ) = 1 + tanh(θ·f + b) (eq. 3), which is held fixed while the *target* network trains
    for one stage. A *reference* network of identical architecture and identical (copied)
    initial parameters is fed the identical augmented batches with uniform weights (DNR).

    ## Action Space
    ``Box(-1, 1, (n_features + 1,), float32)``: θ = action[:-1] * action_scale and
    b = action[-1] * action_scale. Per-sample features f (eq. 6) are, for ``features="law"``,
    [loss, entropy, density, label one-hot (C)], the first three z-scored within each batch
    (``feature_names`` lists them); ``features="agnostic"`` uses
    [loss, entropy, density, margin, grad_norm, class_proportion] (independent of the number of
    classes, so a policy transfers between datasets). The zero action gives every sample weight
    exactly 1. With ``normalize_weights=True`` (an extension, not in LAW) K is divided by its
    batch mean, so the agent chooses only relative weights and cannot raise the effective
    learning rate by raising every weight. Actions outside the box are clipped to it; a
    non-finite action raises ``ValueError``.

    ## Observation Space
    ``Box(float32)``, LAW's state s_T = [e_T, l_smooth, acc_smooth] (eq. 5): the one-hot of the
    stage about to be trained (all zeros after the last stage; any MLP learns the stage
    embedding e_T from it), the target's training loss smoothed by a bias-corrected EMA over
    iterations (``loss_smoothing``; clipped to [0, 100]), and its validation accuracy smoothed by
    an EMA over stages (``acc_smoothing``). Before any training (no warm-up) both are measured on
    the validation split. ``obs_mode="extended"`` appends the training progress in [0, 1], the
    current LR divided by the initial LR, the reference's validation accuracy and the loss gap
    (target - reference mean training loss of the last stage, clipped to [-100, 100]).

    ## Rewards
    At the end of each stage: r = r_w (acc_target - acc_reference) on the clean validation split
    (eq. 8), r_w = exp(k · ce/ne) · s (eq. 9) with ce/ne the fraction of epochs done,
    k = ``reward_k`` (default 1) and s = ``reward_scale`` (default 100, so the gain is in
    percentage points at the first stage). Uniform weights give exactly 0. If the target's
    loss becomes non-finite the episode terminates with reward ``divergence_penalty``
    (default -reward_scale).

    ## Starting State
    ``reset`` initialises both networks (seeded by the episode seed drawn from ``np_random``;
    the data corruption and splits are fixed by the config's ``seed``), trains
    ``warmup_stages`` stages with uniform weights (no weighting in early stages), and returns
    the state before the first weighted stage.

    ## Episode End
    Terminated after the last stage (``num_stages - warmup_stages`` steps), and on divergence: a
    diverged training run is a terminal state (``Episode.over``), so an agent does not bootstrap
    a value past it. Never truncated. At the last stage ``info`` also holds the test accuracies
    of both networks.

    ## Info
    ``stage``, ``epoch``, ``acc_target``, ``acc_reference`` (validation), ``loss_target``,
    ``loss_reference`` (mean training loss over the stage), ``loss_gap``, ``noisy_weight_mean``,
    ``clean_weight_mean`` (NaN when the stage saw no such sample), ``class_weight_mean`` (array,
    by observed label), ``theta``, ``bias``, ``diverged``; at the end ``test_acc_target`` and
    ``test_acc_reference``. No wall-clock values (determinism).

    ## Dynamics
    One :class:`reweight_gym.envs.episode.Episode` per ``reset`` with a live reference network:
    the same stage dynamics the benchmark runs.

    ## Arguments
    All fields of :class:`reweight_gym.config.EnvConfig`, e.g.
    ``gymnasium.make("Reweight-CIFAR-v0", data_root=..., noise_rate=0.4, preset="cpu")``:
    ``dataset``, ``data_root``, ``download``, ``noise_type``, ``noise_rate``,
    ``imbalance_type``, ``imbalance_factor``, ``model``, ``epochs``, ``num_stages``,
    ``warmup_stages``, ``batch_size``, ``train_size``, ``val_size``, ``meta_size``,
    ``test_size``, ``lr``, ``features``, ``obs_mode``, ``action_scale``, ``reward_k``,
    ``reward_scale``, ``divergence_penalty``, ``device``, ``seed``, ``preset`` (``tiny``, ``cpu``,
    ``paper``; explicit keywords override it). Every value is validated here, in ``__init__``.
    """

    metadata = {"render_modes": []}

    def __init__(self, dataset: str = "digits", preset: str = "tiny",
                 instance_set: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                 reference_cache: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        allocator_mode()  # a bad REWEIGHT_GYM_MALLOC fails here, not at the first reset
        self.reference_cache = ReferenceCache(reference_cache) if reference_cache else None
        self._splits: dict[str, DataSplits] = {}
        if instance_set is None:
            self.instance_set: InstanceSet | None = None
            self.config = EnvConfig.resolve(dataset, preset, **kwargs)
            self._configs = {"": self.config}
            self.splits: DataSplits = build_splits(self.config)
            self._splits[""] = self.splits
            c = self.splits.num_classes
        else:
            self.instance_set = load_instance_set(instance_set)
            bad = sorted(set(kwargs) - set(SET_WIDE_FIELDS))
            if bad:
                raise ValueError(f"invalid keyword(s) {bad} with instance_set: the instances set "
                                 f"the run; allowed: {', '.join(SET_WIDE_FIELDS)}")
            self._data_root = kwargs.pop("data_root", None)
            self._set_wide = kwargs
            self._configs = {inst.name: inst.config(self._data_root, **kwargs)
                             for inst in self.instance_set.instances}  # validated now
            self.config = self._configs[self.instance_set.instances[0].name]
            c = _num_classes(self.instance_set, self._configs, self._splits_of)
        cfg = self.config
        self.instance: str | None = None
        self.num_classes = c
        self.feature_names = feature_names(cfg.features, c)
        self.n_features = feature_dim(cfg.features, c)
        self.action_space = action_space(cfg, c)
        self.observation_space = observation_space(cfg)
        self.weigher = LinearTanhWeigher(cfg.features, normalize=cfg.normalize_weights)
        self.episode: Episode | None = None
        self._seeded = False
        self._ended = False
        self._reference: list[tuple[float, float]] = []
        self._reference_key: str | None = None

    def _config_of(self, name: str, reset_seed: int | None) -> EnvConfig:
        """The config of an episode of instance ``name`` (its data seed may follow the reset
        seed)."""
        if self.instance_set is None or not self.instance_set[name].data_seed_per_episode:
            return self._configs[name]
        return self.instance_set[name].config(self._data_root, reset_seed, **self._set_wide)

    def _splits_of(self, name: str, cfg: EnvConfig | None = None) -> DataSplits:
        """The data of an instance (built on first use, then kept, per data seed)."""
        cfg = cfg or self._configs[name]
        key = f"{name}|{cfg.seed}" if name else ""
        if key not in self._splits:
            self._splits[key] = build_splits(cfg)
        return self._splits[key]

    def action_to_params(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Validate, clip and scale an action to (θ, b)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape:
            raise ValueError(f"invalid action shape {a.shape}: expected "
                             f"{self.action_space.shape} (n_features + 1)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"invalid action {a.tolist()}: every entry must be finite")
        a = np.clip(a, -1.0, 1.0) * self.config.action_scale
        return a[:-1], float(a[-1])

    def _draw(self, options: dict[str, Any]) -> tuple[str, int | None]:
        """The instance of this episode and its reset seed: ``options["instance"]`` (a name or
        an index) and ``options["instance_seed"]`` (one of its ``episode_seeds``), else drawn
        from ``np_random``."""
        s = self.instance_set
        if s is None:
            return "", None
        pick = options.get("instance")
        inst = s[pick] if pick is not None else s[int(self.np_random.integers(len(s)))]
        seed = options.get("instance_seed")
        if seed is None:
            seed = inst.episode_seeds[int(self.np_random.integers(len(inst.episode_seeds)))]
        elif seed not in inst.episode_seeds:
            raise ValueError(f"invalid instance_seed={seed!r}: instance {inst.name!r} has the "
                             f"episode seeds {list(inst.episode_seeds)}")
        return inst.name, int(seed)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None and not self._seeded:
            seed = self.config.seed
        super().reset(seed=seed)
        self._seeded = True
        name, reset_seed = self._draw(dict(options or {}))
        run_seed = episode_seed(self.np_random if reset_seed is None else reset_seed)
        self.instance = name or None
        self.config = self._config_of(name, reset_seed)
        splits = self._splits_of(name, self.config)
        reference: str | ReferenceTrace = "live"
        self._reference_key = None
        if self.reference_cache is not None:
            key = reference_key(self.config, run_seed, self.config.device)
            hit = self.reference_cache.get(key)
            if hit is not None:
                reference = ReferenceTrace(hit.val_acc, hit.train_loss, hit.test_acc)
            else:
                self._reference_key = key
        self.episode = Episode(self.config, splits, run_seed, reference=reference)
        self._reference = [(r.acc_reference, r.loss_reference) for r in self.episode.start()]
        self._ended = False
        info: dict[str, Any] = {"episode_seed": run_seed, "stage": self.episode.trainer.stage}
        if self.instance_set is not None:
            info.update(instance=name, instance_seed=reset_seed)
        if self.reference_cache is not None:
            info["reference_cached"] = isinstance(reference, ReferenceTrace)
        return self.episode.observe(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset()")
        theta, bias = self.action_to_params(action)
        self.weigher.set_params(torch.as_tensor(theta, dtype=torch.float32), bias)
        result = self.episode.step(self.weigher)
        self._reference.append((result.acc_reference, result.loss_reference))
        stats = result.stats
        info: dict[str, Any] = {
            "stage": result.stage,
            "epoch": result.epoch,
            "theta": theta.astype(np.float32), "bias": bias,
            "loss_target": stats.loss_target, "loss_reference": result.loss_reference,
            "loss_gap": result.loss_gap,
            "noisy_weight_mean": stats.noisy_weight_mean,
            "clean_weight_mean": stats.clean_weight_mean,
            "class_weight_mean": stats.class_weight_mean.astype(np.float32),
            "diverged": result.diverged,
            "acc_target": result.acc_target, "acc_reference": result.acc_reference,
        }
        if self.instance is not None:
            info["instance"] = self.instance
        terminated = self.episode.over  # the last stage, or a divergence (a terminal state)
        self._ended = terminated
        if terminated and not result.diverged:
            final = self.episode.finish()
            info.update(final)
            self._store_reference(final.get("test_acc_reference"))
        return self.episode.observe(), float(result.reward), terminated, False, info

    def _store_reference(self, test_acc: float | None) -> None:
        """After a whole episode with a live reference: its trajectory into the cache."""
        if self._reference_key is None or self.reference_cache is None or test_acc is None:
            return
        val, loss = zip(*self._reference)
        self.reference_cache.put(self._reference_key,
                                 CachedReference(list(val), list(loss), float(test_acc)),
                                 about={"instance": self.instance,
                                        "run_seed": self.episode.trainer.seed
                                        if self.episode else None})
        self._reference_key = None


#: The keywords an instance-set environment takes besides the set: what applies to every
#: instance (where the data is, and what shapes the agent's view and reward).
SET_WIDE_FIELDS = ("data_root", "features", "obs_mode", "action_scale", "normalize_weights",
                   "reward_k", "reward_scale", "divergence_penalty", "loss_smoothing",
                   "acc_smoothing", "device", "cache_dir", "channels_last")


def _num_classes(s: InstanceSet, configs: dict[str, EnvConfig],
                 splits_of: Any) -> int:
    """The number of classes of the set's instances; with ``features='law'`` (a label one-hot
    in the action) they must agree."""
    counts = {inst.name: known_classes(inst.dataset) or splits_of(inst.name).num_classes
              for inst in s.instances}
    first = s.instances[0].name
    if configs[first].features == "law" and len(set(counts.values())) > 1:
        raise ValueError(f"invalid features='law' for instance set {s.name!r}: its instances "
                         f"have {sorted(set(counts.values()))} classes and LAW's features hold "
                         "a label one-hot; use features='agnostic'")
    return counts[first]
