"""Bad input fails early, at make time, with a message naming field, value and what is allowed."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import reweight_gym  # noqa: F401  (registers the ids)
from reweight_gym.config import PRESETS, EnvConfig


@pytest.mark.parametrize(
    "kwargs, field, value",
    [
        ({"noise_rate": 1.0}, "noise_rate", "1.0"),
        ({"noise_rate": -0.1}, "noise_rate", "-0.1"),
        ({"noise_rate": float("nan")}, "noise_rate", "nan"),
        ({"noise_type": "gaussian"}, "noise_type", "'gaussian'"),
        ({"imbalance_factor": 0.5}, "imbalance_factor", "0.5"),
        ({"imbalance_type": "zipf"}, "imbalance_type", "'zipf'"),
        ({"num_stages": 9, "epochs": 8}, "num_stages", "9"),
        ({"warmup_stages": 4, "num_stages": 4}, "warmup_stages", "4"),
        ({"batch_size": 1}, "batch_size", "1"),
        ({"lr": 0.0}, "lr", "0.0"),
        ({"model": "vgg99"}, "model", "'vgg99'"),
        ({"features": "pixels"}, "features", "'pixels'"),
        ({"obs_mode": "rgb"}, "obs_mode", "'rgb'"),
        ({"lr_milestones": (0.5, 1.5)}, "lr_milestones", "1.5"),
        ({"device": "tpu"}, "device", "'tpu'"),
        ({"epochs": 2.5}, "epochs", "2.5"),
        ({"noise_type": "pair_flip", "noise_rate": 0.6}, "noise_rate", "0.6"),
        ({"data_root": "/nonexistent/dir"}, "data_root", "/nonexistent/dir"),
    ],
)
def test_invalid_values_raise_when_env_is_made(kwargs: dict, field: str, value: str) -> None:
    with pytest.raises(ValueError) as err:
        gym.make("Reweight-Digits-v0", **kwargs)
    msg = str(err.value)
    assert field in msg and value in msg
    assert "allowed" in msg or "must" in msg


def test_unknown_dataset_and_preset_and_keyword() -> None:
    with pytest.raises(ValueError, match=r"dataset='mnist'.*digits, cifar10"):
        reweight_gym.ReweightEnv(dataset="mnist")
    with pytest.raises(ValueError, match=r"preset='huge'.*tiny, proxy, cpu, cpu-noaug, paper"):
        gym.make("Reweight-Digits-v0", preset="huge")
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['noise'\]"):
        gym.make("Reweight-Digits-v0", noise=0.4)


def test_cifar_without_data_root_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"data_root=None.*download=True"):
        gym.make("Reweight-CIFAR-v0")
    with pytest.raises(ValueError, match=r"data_root=None"):
        gym.make("Reweight-ImageFolder-v0")


def test_explicit_keywords_override_the_preset() -> None:
    cfg = EnvConfig.resolve("cifar10", "cpu", data_root=".", epochs=3, num_stages=3)
    assert cfg.epochs == 3 and cfg.num_stages == 3
    assert cfg.batch_size == PRESETS["cpu"]["image"]["batch_size"]
    paper = EnvConfig.resolve("cifar10", "paper", data_root=".")
    # LAW's search setting
    assert (paper.train_size, paper.val_size, paper.epochs, paper.num_stages) == (
        20000, 5000, 200, 20)
    assert paper.lr_milestones == (0.5, 0.65, 0.8) and paper.weight_decay == 2e-5
    with pytest.raises(ValueError, match="epochs"):
        cfg.replace(epochs=0)


def test_cpu_noaug_is_cpu_without_augmentation() -> None:
    for dataset in ("cifar10", "digits"):
        noaug = EnvConfig.resolve(dataset, "cpu-noaug", data_root=".")
        assert (noaug.crop_padding, noaug.flip) == (0, False)
        # everything else is the cpu preset's: the CIFAR-10 tables (docs: results/cifar10.md)
        # ran as `cpu` + these keywords
        cpu = EnvConfig.resolve(dataset, "cpu", data_root=".", crop_padding=0, flip=False)
        assert noaug.preset == "cpu-noaug"
        assert noaug == dataclasses.replace(cpu, preset="cpu-noaug")
    assert EnvConfig.resolve("cifar10", "cpu", data_root=".").crop_padding == 4
