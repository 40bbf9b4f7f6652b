"""Configuration of one training run / environment: presets as data, validated early.

Every keyword of ``gymnasium.make("Reweight-...-v0", **kwargs)`` is a field of
:class:`EnvConfig`. A *preset* (``tiny``, ``cpu``, ``cpu-noaug``, ``paper``) fills every field
with sizes that fit a purpose; explicit keywords override the preset. Validation happens in
:meth:`EnvConfig.resolve`, i.e. when the environment (or a baseline run) is *made*, and every
error is a ``ValueError`` that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from reweight_gym.validation import (
    check_bool,
    check_choice,
    check_device,
    check_number,
    check_text,
    invalid,
)

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
NOISE_TYPES = ("none", "uniform", "uniform_other", "pair_flip", "flip2")
IMBALANCE_TYPES = ("none", "long_tail", "step")
LR_SCHEDULES = ("step", "cosine", "constant")
FEATURE_SETS = ("law", "agnostic")
OBS_MODES = ("law", "extended", "transfer")
PRESET_NAMES = ("tiny", "proxy", "cpu", "cpu-noaug", "paper")
#: Image side of the built-in datasets (image folders have any size).
IMAGE_SIDE = {"digits": 8, "cifar10": 32, "cifar100": 32}
MAX_FOLDER_PADDING = 256
FLOAT32_MAX = 3.4028234663852886e38

#: LAW's exact formulation of the environment (``gym.make(id, **LAW_FORMULATION)``):
#: the state features of eq. 6 (loss, entropy, density, label one-hot) and the raw weights
#: K = 1 + tanh(theta . f + b) of eq. 3. The defaults differ in both, for the agents'
#: sake (``benchmarks/env_formulation.py`` compares the two): class-count-free features, which a
#: policy can carry to a dataset with another number of classes, and weights divided by their batch
#: mean, which take away the learning-rate shortcut (a constant b < 0 shrinks every weight and with
#: it the effective learning rate, a reward that has nothing to do with which samples are weighted).
LAW_FORMULATION: dict[str, Any] = {"features": "law", "normalize_weights": False}

# Presets are data: a base per preset and overrides per dataset family ("digits" or "image").
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "digits": dict(
            model="mlp", epochs=8, num_stages=4, warmup_stages=0, batch_size=64,
            train_size=800, val_size=200, meta_size=100, test_size=400,
            lr=0.1, lr_schedule="cosine", weight_decay=5e-4, crop_padding=1, flip=False,
        ),
        "image": dict(
            model="small_cnn", model_kwargs={"width": 8}, epochs=2, num_stages=2,
            warmup_stages=0, batch_size=64, train_size=512, val_size=128, meta_size=100,
            test_size=256, lr=0.05, lr_schedule="cosine", weight_decay=5e-4,
            crop_padding=4, flip=True,
        ),
    },
    "cpu": {
        "digits": dict(
            model="mlp", epochs=30, num_stages=10, warmup_stages=1, batch_size=64,
            train_size=None, val_size=200, meta_size=100, test_size=400,
            lr=0.1, lr_schedule="step", lr_milestones=(0.5, 0.75), weight_decay=5e-4,
            crop_padding=1, flip=False,
        ),
        "image": dict(
            model="small_cnn", model_kwargs={"width": 16}, epochs=30, num_stages=10,
            warmup_stages=1, batch_size=128, train_size=10000, val_size=2000, meta_size=1000,
            test_size=None, lr=0.1, lr_schedule="step", lr_milestones=(0.5, 0.75),
            weight_decay=5e-4, crop_padding=4, flip=True,
        ),
    },
    "paper": {
        # LAW's search setting: 20,000 train / 5,000 validation, 200 epochs in 20 stages,
        # lr 0.1 divided by 10 at stages 10, 13, 16, weight decay 2e-5, batch 128.
        "digits": dict(
            model="mlp", epochs=200, num_stages=20, warmup_stages=2, batch_size=128,
            train_size=None, val_size=200, meta_size=100, test_size=400,
            lr=0.1, lr_schedule="step", lr_milestones=(0.5, 0.65, 0.8), weight_decay=2e-5,
            crop_padding=1, flip=False,
        ),
        "image": dict(
            model="resnet32", model_kwargs={}, epochs=200, num_stages=20, warmup_stages=2,
            batch_size=128, train_size=20000, val_size=5000, meta_size=1000, test_size=None,
            lr=0.1, lr_schedule="step", lr_milestones=(0.5, 0.65, 0.8), weight_decay=2e-5,
            crop_padding=4, flip=True,
        ),
    },
}

# ``cpu-noaug``: ``cpu`` without augmentation (no random crop, no flip). At 40% label noise its
# plain training memorises the wrong labels after the first learning-rate decay (its final test
# accuracy ends well below its best-validation epoch's: ``benchmarks/results/cifar10-cpu-noaug/``),
# the regime the reweighting papers' gains come from; ``cpu`` barely memorises.
PRESETS["cpu-noaug"] = {family: {**values, "crop_padding": 0, "flip": False}
                        for family, values in PRESETS["cpu"].items()}

# ``proxy``: a cheap stand-in for ``cpu-noaug`` CIFAR-10 to train agents on: a quarter of the pixels
# (16 x 16), an MLP (two hidden layers of 512), 2,000 training images, no augmentation, 30 epochs
# of cosine-annealed SGD (lr 0.01) without weight decay, 10 stages with one warm-up stage as
# ``cpu``. Chosen among the candidates of ``benchmarks/proxy_search.py`` (candidate
# ``X16lr01e30``) as one whose plain training memorises at 40% uniform noise (final test accuracy
# below the best-validation epoch's) with its best-validation epoch after the warm-up stage, so
# that a weighting acts before the peak, and where a meta-gradient method gains over plain
# training (results: ``benchmarks/results/presets/``). Digits run as ``cpu``.
PRESETS["proxy"] = {
    "digits": dict(PRESETS["cpu"]["digits"]),
    "image": dict(
        model="mlp", model_kwargs={"hidden": (512, 512)}, image_size=16, epochs=30,
        num_stages=10, warmup_stages=1, batch_size=64, train_size=2000, val_size=1000,
        meta_size=200, test_size=2000, lr=0.01, lr_schedule="cosine", lr_milestones=(0.5, 0.75),
        weight_decay=0.0, crop_padding=0, flip=False,
    ),
}

#: (image shape, classes) of the built-in datasets; an image folder's are unknown until its
#: images are read
KNOWN_DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100)}


def known_classes(dataset: str) -> int | None:
    """The number of classes of a built-in dataset, ``None`` for an image folder."""
    known = KNOWN_DATASETS.get(dataset)
    return known[1] if known else None


def _probe_model(model: str, dataset: str, model_kwargs: dict[str, Any]) -> None:
    """Build the model on torch's ``meta`` device (no memory, no computation), so that bad
    ``model_kwargs`` fail when the config is made, not at the first ``reset``."""
    import warnings

    import torch

    from reweight_gym.models import build_model

    # an image folder's model is checked as CIFAR-10's (keywords rarely depend on the image
    # size: a CNN adapts to any)
    shape, classes = KNOWN_DATASETS.get(dataset, KNOWN_DATASETS["cifar10"])
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "zero-element tensors": the real build warns
            build_model(model, classes, shape, **model_kwargs)
    except (RuntimeError, TypeError, OverflowError) as e:  # torch's own checks of the sizes
        raise invalid("model_kwargs", model_kwargs, f"model {model!r} rejects them: {e}") from None


@dataclass(frozen=True)
class EnvConfig:
    """All settings of one LAW training run (one episode).

    Data: ``dataset``, ``data_root``, ``download``, ``noise_type`` (``none``, ``uniform`` = to any
    class incl. the true one as in MW-Net's code, ``uniform_other`` = to another class,
    ``pair_flip`` = c -> c+1, ``flip2`` = MW-Net's two random similar classes), ``noise_rate``,
    ``imbalance_type`` (``long_tail``: n_i = n_max * mu^(i/(C-1)) with mu = 1/imbalance_factor;
    ``step``: the last ``step_minority_classes`` classes cut by ``imbalance_factor``; by default
    LAW's, 2 of 10 classes or 10 of 100, see ``reweight_gym.data.corruption.step_counts``),
    ``imbalance_factor`` (n_max / n_min, >= 1), sizes ``train_size``, ``val_size`` (clean,
    for the reward), ``meta_size`` (clean, balanced; for meta baselines; ``None``: the papers'
    1,000, or 10 per class for an imbalanced run without noise -- which :meth:`resolve` also
    uses instead of the preset's size unless ``meta_size`` is passed), ``test_size``,
    ``image_size`` (``None``: the dataset's; a side length resizes every image to
    ``image_size`` x ``image_size`` by area averaging, e.g. 16 for CIFAR at a quarter of the
    pixels).

    Training: ``model`` (+ ``model_kwargs``), ``epochs``, ``batch_size``, ``lr``, ``momentum``,
    ``weight_decay``, ``nesterov``, ``lr_schedule`` (``step`` with ``lr_milestones`` as fractions
    of training and factor ``lr_gamma``, ``cosine``, ``constant``), augmentation ``crop_padding``
    and ``flip``, ``device``, ``channels_last``.

    LAW environment: ``num_stages`` (T_max), ``warmup_stages``, ``features`` (``law`` =
    [loss, entropy, density, label one-hot] (eq. 6), ``agnostic`` = class-count independent),
    ``obs_mode``, ``action_scale`` (theta = action * action_scale), ``normalize_weights``
    (divide K by its batch mean: only relative weights, an extension to LAW; ``LAW_FORMULATION``
    gives LAW's exact features and raw weights), ``reward_k`` and
    ``reward_scale`` (k and s of eq. 9), ``divergence_penalty``, ``loss_smoothing``,
    ``acc_smoothing``.
    """

    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    cache_dir: str | None = None
    noise_type: str = "uniform"
    noise_rate: float = 0.0
    imbalance_type: str = "none"
    imbalance_factor: float = 1.0
    step_minority_classes: int | None = None
    train_size: int | None = None
    val_size: int = 200
    meta_size: int | None = None
    test_size: int | None = None
    image_size: int | None = None
    model: str = "mlp"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 4
    num_stages: int = 4
    warmup_stages: int = 0
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    lr_schedule: str = "cosine"
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    crop_padding: int = 4
    flip: bool = True
    features: str = "agnostic"
    obs_mode: str = "law"
    action_scale: float = 1.0
    normalize_weights: bool = True
    reward_k: float = 1.0
    reward_scale: float = 100.0
    divergence_penalty: float | None = None
    loss_smoothing: float = 0.9
    acc_smoothing: float = 0.5
    device: str = "cpu"
    channels_last: bool = True
    seed: int = 0
    preset: str = "tiny"

    # ------------------------------------------------------------------ construction
    @classmethod
    def resolve(cls, dataset: str = "digits", preset: str = "tiny", **overrides: Any) -> EnvConfig:
        """Build a config from a preset and explicit overrides, validating every field."""
        check_choice("dataset", dataset, DATASETS)
        check_choice("preset", preset, PRESET_NAMES)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown}: allowed keywords are {', '.join(sorted(names))}"
            )
        family = "digits" if dataset == "digits" else "image"
        values: dict[str, Any] = dict(PRESETS[preset][family])
        values.update({k: v for k, v in overrides.items()})
        values["dataset"] = dataset
        values["preset"] = preset
        if "lr_milestones" in values:
            milestones = values["lr_milestones"]
            if not isinstance(milestones, (list, tuple)) or not all(
                    isinstance(m, (int, float)) and not isinstance(m, bool) for m in milestones):
                raise invalid("lr_milestones", milestones,
                              "must be a list of fractions of training")
            values["lr_milestones"] = tuple(float(m) for m in milestones)
        model_kwargs = values.get("model_kwargs")
        if model_kwargs is not None and not isinstance(model_kwargs, dict):
            raise invalid("model_kwargs", model_kwargs, "must be a dict of model keywords")
        values["model_kwargs"] = dict(model_kwargs or {})
        cfg = cls(**values)
        cfg.validate()  # before anything reads a field
        if "meta_size" not in overrides and cfg.is_imbalanced and not cfg.is_noisy:
            # the papers' long-tail meta set (MW-Net: 10 clean images per class), not the
            # preset's noise-setting size; an explicit meta_size keyword wins
            cfg = cfg.replace(meta_size=None)
        return cfg

    def replace(self, **changes: Any) -> EnvConfig:
        """A validated copy with some fields changed."""
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d

    # ------------------------------------------------------------------ derived values
    @property
    def is_noisy(self) -> bool:
        return self.noise_type != "none" and self.noise_rate > 0

    @property
    def is_imbalanced(self) -> bool:
        return self.imbalance_type != "none" and self.imbalance_factor > 1

    @property
    def penalty(self) -> float:
        """Reward given when the target diverges: by default -reward_scale (all accuracy lost)."""
        if self.divergence_penalty is not None:
            return float(self.divergence_penalty)
        return -float(self.reward_scale)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:  # noqa: C901 - one check per field, flat on purpose
        """Raise ``ValueError`` naming field, value and what is allowed for every bad value."""
        from reweight_gym.models import MODEL_NAMES  # late: models import torch

        def number(name: str, lo: float | None = None, hi: float | None = None,
                   **kw: bool) -> None:
            check_number(name, getattr(self, name), lo, hi, **kw)

        side = IMAGE_SIDE.get(self.dataset)  # the native side (None: an image folder's)
        for name, allowed in (("dataset", DATASETS), ("preset", PRESET_NAMES),
                              ("noise_type", NOISE_TYPES), ("imbalance_type", IMBALANCE_TYPES),
                              ("lr_schedule", LR_SCHEDULES), ("features", FEATURE_SETS),
                              ("obs_mode", OBS_MODES), ("model", MODEL_NAMES)):
            check_choice(name, getattr(self, name), allowed)
        if not isinstance(self.model_kwargs, dict):
            raise invalid("model_kwargs", self.model_kwargs, "must be a dict")
        _probe_model(self.model, self.dataset, self.model_kwargs)
        number("noise_rate", 0.0, 1.0, hi_open=True)
        if self.noise_type == "pair_flip" and self.noise_rate >= 0.5:
            raise invalid("noise_rate", self.noise_rate, "must be < 0.5 for pair_flip noise")
        number("imbalance_factor", 1.0)
        number("step_minority_classes", 1, integer=True, optional=True)
        number("train_size", 1, integer=True, optional=True)
        number("val_size", 1, integer=True)
        number("meta_size", 0, integer=True, optional=True)
        number("test_size", 1, integer=True, optional=True)
        number("image_size", 4, side if side else None, integer=True, optional=True)
        number("epochs", 1, integer=True)
        number("num_stages", 1, integer=True)
        if self.num_stages > self.epochs:
            raise invalid("num_stages", self.num_stages,
                          f"must be <= epochs ({self.epochs}); a stage spans at least one epoch")
        number("warmup_stages", 0, integer=True)
        if self.warmup_stages >= self.num_stages:
            raise invalid("warmup_stages", self.warmup_stages,
                          f"must be < num_stages ({self.num_stages})")
        number("batch_size", 2, integer=True)
        # the optimiser works in float32 (larger values overflow in its first step)
        number("lr", 0.0, FLOAT32_MAX, lo_open=True)
        number("momentum", 0.0, 1.0, hi_open=True)
        number("weight_decay", 0.0, FLOAT32_MAX)
        number("lr_gamma", 0.0, 1.0, lo_open=True)
        for m in self.lr_milestones:
            if not (isinstance(m, (int, float)) and 0.0 < m < 1.0):
                raise invalid("lr_milestones", self.lr_milestones,
                              "must be fractions of training strictly between 0 and 1")
        # a crop padded by the image side or more can be all padding; unknown image folders are
        # bounded only against the memory a padded batch takes
        padded = self.image_size or side
        number("crop_padding", 0, padded - 1 if padded else MAX_FOLDER_PADDING, integer=True)
        number("action_scale", 0.0, FLOAT32_MAX, lo_open=True)  # θ is a float32 tensor
        for flag in ("normalize_weights", "download", "flip", "channels_last", "nesterov"):
            check_bool(flag, getattr(self, flag))
        if self.nesterov and self.momentum == 0:
            raise invalid("nesterov", self.nesterov, "needs momentum > 0 (Nesterov momentum)")
        number("reward_scale", 0.0, lo_open=True)
        number("reward_k")
        # r_w = s * exp(k * ce / ne) (eq. 9, ce / ne <= 1) and the return, a sum of num_stages
        # rewards of at most r_w each, must stay finite
        k_max = math.log(sys.float_info.max / (self.reward_scale * self.num_stages))
        if self.reward_k > k_max:
            raise invalid("reward_k", self.reward_k,
                          f"must be <= {k_max:.6g} with reward_scale={self.reward_scale!r} and "
                          f"num_stages={self.num_stages}: the return, up to num_stages * "
                          "reward_scale * exp(reward_k) (eq. 9), must stay finite")
        number("divergence_penalty", optional=True)
        number("loss_smoothing", 0.0, 1.0, hi_open=True)
        number("acc_smoothing", 0.0, 1.0, hi_open=True)
        number("seed", 0, integer=True)
        check_device("device", self.device)
        check_text("data_root", self.data_root, optional=True)
        check_text("cache_dir", self.cache_dir, optional=True)
        if self.dataset == "imagefolder" and not self.data_root:
            raise invalid("data_root", self.data_root,
                          "dataset='imagefolder' needs a directory with train/<class>/ and "
                          "test/<class>/ folders")
        if self.dataset in ("cifar10", "cifar100") and not self.data_root and not self.download:
            raise invalid("data_root", self.data_root,
                          f"dataset={self.dataset!r} needs data_root (a directory with the pickle "
                          "layout or train/<class>/ and test/<class>/ folders) or download=True")
        if self.data_root is not None and not self.download and not os.path.isdir(self.data_root):
            raise invalid("data_root", self.data_root, "must be an existing directory")
