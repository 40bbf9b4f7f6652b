"""The model registry: every registered network's shapes, feature contract, size and seeding."""

from __future__ import annotations

import pytest
import torch

from reweight_gym.models import MODEL_NAMES, build_model

# image shape each model is built for here (the MLP is the digits model)
SHAPES = {"resnet32": (3, 32, 32), "wrn28_10": (3, 32, 32), "small_cnn": (3, 32, 32),
          "mlp": (1, 8, 8)}


def test_every_registered_model_is_covered() -> None:
    assert set(MODEL_NAMES) == set(SHAPES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_and_feature_contract(name: str) -> None:
    """``model(x) == model.fc(model.features(x))``: methods that work on the last layer only
    (FSR's feature sharing) rely on it."""
    torch.manual_seed(0)
    model = build_model(name, 7, SHAPES[name]).eval()
    x = torch.randn(3, *SHAPES[name])
    with torch.no_grad():
        logits = model(x)
        h = model.features(x)
        assert logits.shape == (3, 7)
        assert isinstance(model.fc, torch.nn.Linear) and model.fc.out_features == 7
        assert h.shape == (3, model.fc.in_features)
        assert torch.equal(model.fc(h), logits)


def test_parameter_counts() -> None:
    """The sizes of the papers' networks (ResNet-32: 0.46M, WRN-28-10: 36.5M) and the exact
    counts of the small ones."""
    def count(name: str, **kw: object) -> int:
        return sum(p.numel() for p in build_model(name, 10, SHAPES[name], **kw).parameters())

    assert 0.46e6 < count("resnet32") < 0.47e6
    assert 36.4e6 < count("wrn28_10") < 36.6e6
    convs = 9 * (3 * 16 + 16 * 16 + 16 * 32 + 32 * 32 + 32 * 64 + 64 * 64)
    assert count("small_cnn", width=16) == convs + 2 * (2 * 16 + 2 * 32 + 2 * 64) + 64 * 10 + 10
    assert count("mlp") == (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)
    assert count("mlp", hidden=(32,)) == (64 * 32 + 32) + (32 * 10 + 10)


@pytest.mark.parametrize("name", ["resnet32", "small_cnn", "mlp"])
def test_initialisation_is_fixed_by_the_seed(name: str) -> None:
    def params(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [p.detach() for p in build_model(name, 10, SHAPES[name]).parameters()]

    a, b, c = params(1), params(1), params(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))


def test_bad_names_and_kwargs() -> None:
    with pytest.raises(ValueError, match=r"model='nope'.*resnet32, wrn28_10, small_cnn, mlp"):
        build_model("nope", 10, (3, 32, 32))
    with pytest.raises(ValueError, match=r"model_kwargs=\{'depth': 3\} for model 'small_cnn'"):
        build_model("small_cnn", 10, (3, 32, 32), depth=3)
    with pytest.raises(ValueError, match=r"depth=33.*6n \+ 2"):
        build_model("resnet32", 10, (3, 32, 32), depth=33)
    with pytest.raises(ValueError, match=r"depth=27.*6n \+ 4"):
        build_model("wrn28_10", 10, (3, 32, 32), depth=27)


def test_seeded_dropout_masks_follow_the_seed() -> None:
    from reweight_gym.models import SeededDropout, dropout_seed

    model = build_model("wrn28_10", 10, (3, 8, 8), depth=10, widen=1, dropout=0.5).train()
    x = torch.randn(4, 3, 8, 8)
    with dropout_seed(model, 7):
        a, b = model(x), model(x)
    with dropout_seed(model, 8):
        c = model(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(m.seed is None for m in model.modules() if isinstance(m, SeededDropout))
    drop = SeededDropout(0.5)
    drop.seed = 3
    ones = torch.ones(1000)
    out = drop(ones)
    assert set(out.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept units times 1/(1-p)
    assert 400 < int((out == 0).sum()) < 600
    assert torch.equal(drop.eval()(ones), ones)
    with pytest.raises(ValueError, match=r"dropout=1.0.*\[0, 1\)"):
        SeededDropout(1.0)
