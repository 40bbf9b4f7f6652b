"""Per-sample characteristics against hand computations on small tensors."""

from __future__ import annotations

import math

import torch

from reweight_gym.training.characteristics import (
    SampleHistory,
    class_mean_loss,
    class_proportion,
    density,
    entropy,
    feature_dim,
    feature_names,
    grad_norm,
    margin,
    sample_features,
    standardize,
)

LOGITS = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1.0, 2.0]])
LABELS = torch.tensor([0, 0, 1])


def test_entropy_matches_hand_values() -> None:
    h = entropy(LOGITS)
    assert torch.allclose(h[0], torch.tensor(math.log(2.0)))
    p = torch.tensor([0.75, 0.25])
    assert torch.allclose(h[1], -(p * p.log()).sum())


def test_density_is_mean_logit_similarity_to_the_others() -> None:
    # S = Lo^T Lo: s01 = 0, s02 = 0, s12 = log3 * 1 + 0 * 2
    d = density(LOGITS)
    l3 = math.log(3.0)
    expected = torch.tensor([0.0, l3 / 2, l3 / 2])
    assert torch.allclose(d, expected, atol=1e-6)


def test_margin_and_grad_norm() -> None:
    m = margin(LOGITS, LABELS)
    p2 = torch.softmax(LOGITS[2], 0)
    assert torch.allclose(m, torch.tensor([0.0, 0.5, float(p2[1] - p2[0])]), atol=1e-6)
    g = grad_norm(LOGITS, LABELS)
    # sample 1: y - p = (0.25, -0.25)
    assert torch.allclose(g[1], torch.tensor(math.sqrt(2) * 0.25))


def test_class_proportion_and_class_mean_loss() -> None:
    counts = torch.tensor([30.0, 10.0])
    assert torch.allclose(class_proportion(LABELS, counts), torch.tensor([0.75, 0.75, 0.25]))
    losses = torch.tensor([1.0, 3.0, 5.0])
    assert torch.allclose(class_mean_loss(losses, LABELS, 2), torch.tensor([2.0, 2.0, 5.0]))


def test_standardize_and_feature_layout() -> None:
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    z = standardize(x)
    assert torch.allclose(z[:, 0], torch.tensor([-1.0, 1.0]), atol=1e-5)
    assert torch.all(z[:, 1] == 0)  # constant column
    losses = torch.tensor([0.1, 0.2, 0.9])
    f = sample_features("law", LOGITS, LABELS, losses, torch.tensor([2.0, 1.0]))
    assert f.shape == (3, feature_dim("law", 2)) == (3, 5)
    assert feature_names("law", 2) == ["loss", "entropy", "density", "label_0", "label_1"]
    assert torch.equal(f[:, 3:], torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(f[:, 0], standardize(losses[:, None])[:, 0])
    g = sample_features("agnostic", LOGITS, LABELS, losses, torch.tensor([2.0, 1.0]))
    assert g.shape == (3, 6) and feature_dim("agnostic", 100) == 6


def test_sample_history_shifts_weights_per_epoch() -> None:
    h = SampleHistory(4)
    h.record(torch.tensor([0, 2]), torch.tensor([0.5, 1.5]), torch.tensor([2.0, 4.0]))
    h.end_epoch()
    h.record(torch.tensor([0]), torch.tensor([0.25]), torch.tensor([1.0]))
    h.end_epoch()
    assert torch.allclose(h.weight_prev1, torch.tensor([0.25, 1.0, 1.5, 1.0]))
    assert torch.allclose(h.weight_prev2, torch.tensor([0.5, 1.0, 1.5, 1.0]))
    assert torch.allclose(h.loss_ema[0], torch.tensor(0.9 * 2.0 + 0.1 * 1.0))
