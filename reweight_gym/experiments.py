"""Named experiment settings, as data: one definition each, used by the demo, the tests and the
``benchmarks/`` scripts (DACBench keeps one definition per benchmark the same way).

An :class:`Experiment` is a dataset, a preset and the environment keywords on top of it (the
corruption, the run length, the optimiser); ``experiment.kwargs()`` are the keywords of
``gymnasium.make`` / ``EnvConfig.resolve`` / ``reweight_gym.baselines.run``. Datasets that are
not embedded (CIFAR) take their directory from the caller (``data_root=...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reweight_gym.config import EnvConfig


@dataclass(frozen=True)
class Experiment:
    """A named training-run configuration."""

    name: str
    dataset: str
    preset: str
    env: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""

    def kwargs(self, **overrides: Any) -> dict[str, Any]:
        """``dataset``, ``preset`` and the environment keywords (``overrides`` win)."""
        return {"dataset": self.dataset, "preset": self.preset, **self.env, **overrides}

    def config(self, **overrides: Any) -> EnvConfig:
        """The resolved, validated config."""
        kw = self.kwargs(**overrides)
        return EnvConfig.resolve(kw.pop("dataset"), kw.pop("preset"), **kw)


def _experiment(name: str, dataset: str, preset: str, description: str,
                **env: Any) -> Experiment:
    return Experiment(name, dataset, preset, MappingProxyType(env), description)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    _experiment(
        "demo", "digits", "tiny",
        "The demo's run (`make demo`): digits with 40% uniform label noise, all training images, "
        "100 epochs of cosine-annealed SGD from lr 0.1 without weight decay, 10 stages: long "
        "enough for plain training to fit part of the wrong labels.",
        noise_type="uniform", noise_rate=0.4, epochs=100, num_stages=10, train_size=None,
        lr_schedule="cosine", lr=0.1, weight_decay=0.0),
    _experiment("digits-tiny", "digits", "tiny",
                "The tiny digits preset (8 epochs, MLP) at 40% uniform noise.", noise_rate=0.4),
    _experiment("digits-cpu", "digits", "cpu",
                "The cpu digits preset (30 epochs, MLP, step lr) at 40% uniform noise.",
                noise_rate=0.4),
    _experiment("digits-cpu-cnn", "digits", "cpu",
                "digits-cpu with the small CNN (BatchNorm) in place of the MLP.",
                noise_rate=0.4, model="small_cnn", model_kwargs={"width": 16}),
    _experiment("cifar10-cpu-noaug-noise40", "cifar10", "cpu-noaug",
                "CIFAR-10, cpu-noaug preset, 40% uniform noise (plain training memorises).",
                noise_type="uniform", noise_rate=0.4),
    _experiment("cifar10-cpu-noaug-pairflip40", "cifar10", "cpu-noaug",
                "CIFAR-10, cpu-noaug preset, 40% pair flip.",
                noise_type="pair_flip", noise_rate=0.4),
    _experiment("cifar10-cpu-noise40", "cifar10", "cpu",
                "CIFAR-10, cpu preset (augmented), 40% uniform noise.",
                noise_type="uniform", noise_rate=0.4),
)}

#: The demo (``reweight-gym demo``): its run, the baselines it compares its agent with (after
#: ``uniform``, the reference; each on its defaults) and the agent's training episodes.
DEMO = EXPERIMENTS["demo"]
DEMO_BASELINES = ("focal", "class_balanced", "spl", "mwnet", "gdw", "fsr", "nrt")
DEMO_AGENT_EPISODES = 250
