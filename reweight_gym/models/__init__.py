"""Model registry: ``build_model(name, num_classes, image_shape, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from reweight_gym.models.nets import (
    MLP,
    CifarResNet,
    SeededDropout,
    SmallCNN,
    WideResNet,
    dropout_seed,
    set_dropout_seed,
)


def _resnet32(num_classes: int, image_shape: tuple[int, int, int], **kw: Any) -> nn.Module:
    return CifarResNet(num_classes, depth=kw.pop("depth", 32), in_channels=image_shape[0], **kw)


def _wrn28_10(num_classes: int, image_shape: tuple[int, int, int], **kw: Any) -> nn.Module:
    return WideResNet(num_classes, depth=kw.pop("depth", 28), widen=kw.pop("widen", 10),
                      in_channels=image_shape[0], **kw)


def _small_cnn(num_classes: int, image_shape: tuple[int, int, int], **kw: Any) -> nn.Module:
    return SmallCNN(num_classes, in_channels=image_shape[0], **kw)


def _mlp(num_classes: int, image_shape: tuple[int, int, int], **kw: Any) -> nn.Module:
    c, h, w = image_shape
    hidden = tuple(kw.pop("hidden", (128, 128)))
    return MLP(num_classes, in_features=c * h * w, hidden=hidden, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet32": _resnet32,
    "wrn28_10": _wrn28_10,
    "small_cnn": _small_cnn,
    "mlp": _mlp,
}
MODEL_NAMES = tuple(MODELS)
#: The family of each model: ``cnn`` (convolutions with BatchNorm) or ``mlp`` (fully connected,
#: no normalisation). Some weighting methods' defaults depend on it (their docstrings say how).
MODEL_FAMILIES: dict[str, str] = {"resnet32": "cnn", "wrn28_10": "cnn", "small_cnn": "cnn",
                                  "mlp": "mlp"}


def model_family(name: str) -> str:
    """``cnn`` or ``mlp`` (:data:`MODEL_FAMILIES`)."""
    if name not in MODEL_FAMILIES:
        raise ValueError(f"invalid model={name!r}: allowed: {', '.join(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[name]


def build_model(name: str, num_classes: int, image_shape: tuple[int, int, int],
                **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; unknown names or keywords raise ``ValueError``."""
    if name not in MODELS:
        raise ValueError(f"invalid model={name!r}: allowed: {', '.join(MODEL_NAMES)}")
    try:
        return MODELS[name](num_classes, image_shape, **dict(kwargs))
    except TypeError as e:
        raise ValueError(f"invalid model_kwargs={kwargs!r} for model {name!r}: {e}") from None


__all__ = ["MLP", "MODELS", "MODEL_FAMILIES", "MODEL_NAMES", "CifarResNet", "SeededDropout",
           "SmallCNN", "WideResNet", "build_model", "dropout_seed", "model_family",
           "set_dropout_seed"]
