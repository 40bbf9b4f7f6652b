"""Loaders (pickle, image folder, digits, JPEG CIFAR), corruptions and splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CIFAR10_CLASSES
from PIL import Image

from reweight_gym.config import EnvConfig
from reweight_gym.data import (
    build_splits,
    corrupt_labels,
    default_meta_size,
    load_cifar,
    load_dataset,
    load_digits,
    load_image_folder,
    long_tail_counts,
    step_counts,
)


def _write_cifar_pickles(root: Path, n_per_batch: int = 20) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = list(rng.integers(0, 10, n_per_batch))
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({b"data": x, b"labels": y}, fh)
        xs.append(x)
        ys.append(y)
    xt = rng.integers(0, 256, (7, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": xt, b"labels": [1] * 7}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    return np.concatenate(xs), np.concatenate(ys)


def test_cifar_pickle_layout_is_read_exactly(tmp_path: Path) -> None:
    x, y = _write_cifar_pickles(tmp_path)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # parent or the folder itself
        data = load_cifar("cifar10", str(root))
        assert data.train_x.shape == (100, 3, 32, 32) and data.train_x.dtype == torch.uint8
        assert np.array_equal(data.train_x.numpy().reshape(100, -1), x)
        assert np.array_equal(data.train_y.numpy(), y)
        assert data.test_x.shape == (7, 3, 32, 32) and data.class_names[3] == "c3"


def test_cifar100_pickle_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x = np.arange(4 * 3072, dtype=np.int64).astype(np.uint8).reshape(4, 3072)
    for split in ("train", "test"):
        with open(folder / split, "wb") as fh:
            pickle.dump({b"data": x, b"fine_labels": [0, 99, 5, 7]}, fh)
    data = load_cifar("cifar100", str(tmp_path))
    assert data.num_classes == 100 and data.train_y.tolist() == [0, 99, 5, 7]
    assert np.array_equal(data.train_x[1].numpy().reshape(-1), x[1])


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid data_root=.*download=True"):
        load_cifar("cifar10", str(tmp_path))


def _write_folder(root: Path, splits: dict[str, int], classes=("ant", "bee", "cat")) -> None:
    rng = np.random.default_rng(1)
    for split, n in splits.items():
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = np.full((6, 6, 3), 40 * k + i, dtype=np.uint8)
                arr[0, 0] = rng.integers(0, 255, 3)
                Image.fromarray(arr).save(d / f"{i:03d}.png")


def test_image_folder_with_trusted_val_feeds_val_and_meta(tmp_path: Path) -> None:
    _write_folder(tmp_path / "ds", {"train": 10, "test": 2, "val": 6})
    cache = tmp_path / "cache"
    data = load_image_folder(str(tmp_path / "ds"), cache_dir=str(cache))
    assert data.class_names == ["ant", "bee", "cat"] and data.train_x.shape == (30, 3, 6, 6)
    assert data.val_x is not None and data.val_x.shape[0] == 18
    assert int(data.train_x[10, 0, 3, 3]) == 40  # first "bee" image, pixel value 40*1+0
    assert len(list(cache.glob("*.npz"))) == 1  # decoded once and cached
    again = load_image_folder(str(tmp_path / "ds"), cache_dir=str(cache))
    assert torch.equal(again.train_x, data.train_x)
    cfg = EnvConfig.resolve("imagefolder", "tiny", data_root=str(tmp_path / "ds"),
                            cache_dir=str(cache), val_size=9, meta_size=6, train_size=30,
                            test_size=6)
    s = build_splits(cfg, data)
    assert len(s.val_y) == 9 and len(s.meta_y) == 6 and len(s.train_y) == 30
    # val/meta come from the trusted split: their images are values 40k + i with i < 6
    assert set(np.bincount(s.meta_y.numpy()).tolist()) == {2}


def test_small_trusted_val_is_split_in_proportion(tmp_path: Path) -> None:
    """A val/ smaller than val_size + meta_size: its images are shared between validation and
    meta in the proportion val_size : meta_size, disjoint, with a warning naming the sizes."""
    _write_folder(tmp_path / "ds", {"train": 10, "test": 2, "val": 6})
    data = load_image_folder(str(tmp_path / "ds"), cache_dir=str(tmp_path / "cache"))
    cfg = EnvConfig.resolve("imagefolder", "tiny", data_root=str(tmp_path / "ds"),
                            cache_dir=str(tmp_path / "cache"), val_size=20, meta_size=10,
                            train_size=30, test_size=6)
    with pytest.warns(UserWarning, match=r"val/ holds 18 trusted images, fewer than "
                                         r"val_size=20 \+ meta_size=10 = 30.*12 validation "
                                         r"and 6 meta"):
        s = build_splits(cfg, data)
    assert np.bincount(s.meta_y.numpy()).tolist() == [2, 2, 2]
    assert np.bincount(s.val_y.numpy()).tolist() == [4, 4, 4]
    assert not set(s.meta_index) & set(s.val_index)  # disjoint (indices into val/)
    assert len(set(s.meta_index) | set(s.val_index)) == 18


def test_trusted_val_without_a_class_is_an_error(tmp_path: Path) -> None:
    _write_folder(tmp_path / "ds", {"train": 10, "test": 2})
    _write_folder(tmp_path / "ds", {"val": 6}, classes=("ant", "bee"))
    data = load_image_folder(str(tmp_path / "ds"), cache_dir=str(tmp_path / "cache"))
    cfg = EnvConfig.resolve("imagefolder", "tiny", data_root=str(tmp_path / "ds"),
                            cache_dir=str(tmp_path / "cache"), val_size=9, meta_size=6,
                            train_size=30, test_size=6)
    with pytest.raises(ValueError, match=r"no image of class 2 in val/ \(12 trusted images in "
                                         r"all\) for val_size=9 \+ meta_size=6 = 15"):
        build_splits(cfg, data)


def test_digits_loader() -> None:
    data = load_dataset("digits")
    assert data.train_x.shape[1:] == (1, 8, 8) and data.num_classes == 10
    assert len(data.train_y) + len(data.test_y) == 1797
    assert int(data.train_x.max()) == 255


def test_digits_cache_holds_the_same_arrays_and_is_read_back(tmp_path: Path) -> None:
    first = load_digits(str(tmp_path))
    cache = tmp_path / "digits-v1.npz"
    assert cache.is_file()
    with np.load(cache, allow_pickle=False) as z:  # the cache is what is read from now on
        arrays = {k: z[k] for k in z.files}
    arrays["train_y"][:] = 3
    np.savez(cache, **arrays)
    assert set(load_digits(str(tmp_path)).train_y.tolist()) == {3}
    cache.unlink()
    again = load_digits(str(tmp_path))
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name


def test_a_corrupt_digits_cache_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "digits-v1.npz").write_bytes(b"not an npz file")
    data = load_digits(str(tmp_path))
    with np.load(tmp_path / "digits-v1.npz", allow_pickle=False) as z:
        assert np.array_equal(z["train_y"], data.train_y.numpy())


def test_digits_load_where_the_cache_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    data = load_digits(str(blocker / "cache"))
    assert len(data.train_y) + len(data.test_y) == 1797


def test_cifar10_image_folder_layout_is_read_exactly(cifar_like) -> None:
    """CIFAR-10 in the JPEG copy's layout (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg): the
    class ids are the sorted class folders, the images are the decoded JPEGs in file order, and
    the decoded arrays are cached once as .npz in cache_dir (the test-written set: any machine)."""
    data = load_cifar("cifar10", cifar_like.root, cache_dir=cifar_like.cache_dir)
    n_train, n_test = 10 * cifar_like.train_per_class, 10 * cifar_like.test_per_class
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (n_test, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.num_classes == 10 and data.class_names == list(CIFAR10_CLASSES)
    assert data.val_x is None  # no val/ folder: validation and meta come from train/
    assert np.bincount(data.train_y.numpy()).tolist() == [cifar_like.train_per_class] * 10
    assert np.bincount(data.test_y.numpy()).tolist() == [cifar_like.test_per_class] * 10
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        files = cifar_like.files(split)
        for i in (0, len(files) // 2 + 3, len(files) - 1):
            with Image.open(files[i]) as im:
                pixels = np.asarray(im.convert("RGB"))
            assert np.array_equal(x[i].numpy().transpose(1, 2, 0), pixels)
            assert CIFAR10_CLASSES[int(y[i])] == files[i].parent.name
    cached = list(Path(cifar_like.cache_dir).glob("imagefolder-*.npz"))
    assert len(cached) == 1
    again = load_cifar("cifar10", cifar_like.root, cache_dir=cifar_like.cache_dir)  # the cache
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)
    assert list(Path(cifar_like.cache_dir).glob("imagefolder-*.npz")) == cached
    with pytest.raises(ValueError, match=r"found 10 class folders, cifar100 has 100"):
        load_cifar("cifar100", cifar_like.root, cache_dir=cifar_like.cache_dir)


def test_cifar10_tiny_splits_from_the_jpeg_layout(cifar_like) -> None:
    """The tiny preset's CIFAR-10 splits, built from the JPEG layout: the preset's sizes,
    disjoint, the meta set balanced, the noise on the training labels only."""
    cfg = EnvConfig.resolve("cifar10", "tiny", data_root=cifar_like.root,
                            cache_dir=cifar_like.cache_dir, noise_rate=0.4)
    s = build_splits(cfg)
    # training: train_size // 10 = 51 images per class
    assert (len(s.train_y), len(s.val_y), len(s.meta_y), len(s.test_y)) == (510, 128, 100, 256)
    assert s.train_x.shape[1:] == (3, 32, 32)
    train, meta, val = set(s.train_index), set(s.meta_index), set(s.val_index)
    assert not (train & meta) and not (train & val) and not (meta & val)
    assert np.bincount(s.meta_y.numpy()).tolist() == [10] * 10
    flipped = (s.train_y != s.train_true_y).float().mean().item()
    assert 0.25 < flipped < 0.5  # 40% uniform noise (a draw of 512 labels, 9/10 of them flip)


@pytest.mark.slow
def test_jpeg_cifar10_copy(cifar_root: str) -> None:
    """The real copy (../shared, or $REWEIGHT_GYM_CIFAR10): all of CIFAR-10, in order."""
    data = load_dataset("cifar10", cifar_root)
    assert data.train_x.shape == (50000, 3, 32, 32) and data.test_x.shape == (10000, 3, 32, 32)
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    assert np.bincount(data.train_y.numpy()).tolist() == [5000] * 10


@pytest.mark.parametrize("noise_type, expected", [
    ("uniform", 0.4 * 9 / 10), ("uniform_other", 0.4), ("pair_flip", 0.4), ("flip2", 0.4)])
def test_realised_noise_rates(noise_type: str, expected: float) -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 2000)
    obs, noisy, t = corrupt_labels(labels, noise_type, 0.4, 10, rng)
    assert np.array_equal(noisy, obs != labels)
    assert abs(noisy.mean() - expected) < 0.015
    assert np.allclose(t.sum(1), 1.0)
    if noise_type == "pair_flip":
        assert np.all(obs[noisy] == (labels[noisy] + 1) % 10)
    if noise_type == "flip2":
        for c in range(10):
            assert len(set(obs[noisy & (labels == c)].tolist())) <= 2


def test_imbalance_counts_follow_the_formulas() -> None:
    counts = long_tail_counts(500, 10, 100.0)
    assert counts[0] == 500 and counts[-1] == 5
    assert counts == [int(500 * 0.01 ** (i / 9)) for i in range(10)]
    assert step_counts(400, 10, 10.0, 3) == [400] * 7 + [40] * 3
    # LAW's step imbalance: 2 of CIFAR-10's classes, 10 of CIFAR-100's
    assert step_counts(400, 10, 25.0) == [400] * 8 + [16] * 2
    assert step_counts(400, 100, 10.0).count(40) == 10
    assert step_counts(400, 5, 10.0) == [400] * 4 + [40]


def test_long_tail_split_and_disjointness() -> None:
    cfg = EnvConfig.resolve("digits", "tiny", imbalance_type="long_tail", imbalance_factor=10,
                            noise_rate=0.0, train_size=None, meta_size=None)
    s = build_splits(cfg)
    assert len(s.meta_y) == 100  # 10 per class for long-tail without noise
    assert np.bincount(s.meta_y.numpy()).tolist() == [10] * 10
    n_max = int(np.bincount(s.train_true_y.numpy()).max())
    assert np.bincount(s.train_true_y.numpy(), minlength=10).tolist() == long_tail_counts(
        n_max, 10, 10.0)
    train, meta, val = set(s.train_index), set(s.meta_index), set(s.val_index)
    assert not (train & meta) and not (train & val) and not (meta & val)


def test_long_tail_gets_ten_meta_images_per_class_unless_set() -> None:
    """The papers' long-tail meta set (10 per class), not the preset's noise-setting 1,000."""
    lt = dict(imbalance_type="long_tail", imbalance_factor=100.0, noise_rate=0.0)
    for preset in ("cpu", "paper"):
        cfg = EnvConfig.resolve("cifar10", preset, download=True, **lt)
        assert cfg.meta_size is None and default_meta_size(cfg, 10) == 100
        assert EnvConfig.resolve("cifar10", preset, download=True, meta_size=1000,
                                 **lt).meta_size == 1000
        assert EnvConfig.resolve("cifar10", preset, download=True,
                                 **{**lt, "noise_rate": 0.4}).meta_size == 1000
    step = EnvConfig.resolve("cifar10", "cpu", download=True, imbalance_type="step",
                             imbalance_factor=25.0)
    assert default_meta_size(step, 10) == 100


def test_noise_on_top_of_imbalance_and_reproducibility() -> None:
    kw = dict(imbalance_type="long_tail", imbalance_factor=5, noise_rate=0.4, meta_size=50)
    a = build_splits(EnvConfig.resolve("digits", "tiny", seed=1, **kw))
    b = build_splits(EnvConfig.resolve("digits", "tiny", seed=1, **kw))
    c = build_splits(EnvConfig.resolve("digits", "tiny", seed=2, **kw))
    assert torch.equal(a.train_y, b.train_y) and np.array_equal(a.train_index, b.train_index)
    assert not np.array_equal(a.train_index, c.train_index)
    assert a.is_noisy.any() and torch.equal(a.is_noisy, a.train_y != a.train_true_y)
    counts = np.bincount(a.train_true_y.numpy(), minlength=10)
    assert counts[0] > counts[-1]
    # disjointness holds with noise too
    assert not set(a.train_index) & (set(a.meta_index) | set(a.val_index))
