"""Datasets as uint8 tensors: CIFAR-10/100 (pickle or image-folder layout), image folders, digits.

Images are decoded once into ``(N, C, H, W)`` uint8 tensors and cached on disk as ``.npz`` (no
pickle), so later runs load the arrays directly. Batches are later sliced from these tensors and
augmented on the device; no per-image PIL data loader is involved in training.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle  # only for the official CIFAR pickle files (trusted, fixed layout)
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


@dataclass
class ImageData:
    """A dataset before corruption and splitting.

    ``val_x``/``val_y`` hold a *trusted* clean split when the source has one (an image folder
    with ``val/<class>/``); validation and meta sets are then drawn from it.
    """

    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: list[str]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


_MEMORY_CACHE: dict[tuple, ImageData] = {}


def default_cache_dir() -> Path:
    """``$REWEIGHT_GYM_CACHE`` or ``~/.cache/reweight_gym``."""
    env = os.environ.get("REWEIGHT_GYM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reweight_gym"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a cache file (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a cache file atomically (a temporary file of this process, then renamed), so that
    processes sharing the cache never read a partial file; a failed write leaves no temporary
    file and raises the ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **cast("dict[str, Any]", arrays))  # mypy matches ** to allow_pickle
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def load_dataset(name: str, data_root: str | None = None, download: bool = False,
                 cache_dir: str | None = None) -> ImageData:
    """Load ``digits``, ``cifar10``, ``cifar100`` or ``imagefolder`` (memoised per process)."""
    key = (name, os.path.abspath(data_root) if data_root else None, download)
    if key not in _MEMORY_CACHE:
        if name == "digits":
            data = load_digits(cache_dir)
        elif name in ("cifar10", "cifar100"):
            data = load_cifar(name, data_root, download=download, cache_dir=cache_dir)
        elif name == "imagefolder":
            if data_root is None:
                raise ValueError("invalid data_root=None: imagefolder needs a directory")
            data = load_image_folder(data_root, cache_dir=cache_dir)
        else:
            raise ValueError(f"invalid dataset={name!r}: allowed: digits, cifar10, cifar100, "
                             "imagefolder")
        _MEMORY_CACHE[key] = data
    return _MEMORY_CACHE[key]


# ---------------------------------------------------------------------------------- digits
def load_digits(cache_dir: str | None = None) -> ImageData:
    """scikit-learn's digits (1,797 8x8 grey images, 10 classes), offline.

    Pixel values 0..16 are scaled to 0..255. The source has no test split, so a fixed
    stratified quarter of each class (independent of any run seed) is the test set. The arrays
    are cached as ``digits-v1.npz`` under the cache directory: a fresh process (an isolated
    benchmark run, an agent's searcher) then reads 60 KB instead of importing scikit-learn
    (about 2 s). A cache that cannot be read (unreadable, corrupt, no home directory) is
    rewritten from scikit-learn; one that cannot be written is skipped.
    """
    names = ("train_x", "train_y", "test_x", "test_y")
    arrays: dict[str, np.ndarray] | None = None
    cache_file: Path | None = None
    try:
        cache_file = (Path(cache_dir) if cache_dir else default_cache_dir()) / "digits-v1.npz"
        if cache_file.exists():
            stored = _read_npz(cache_file)
            arrays = {k: stored[k] for k in names}
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        arrays = None
    if arrays is None:
        arrays = _digits_arrays()
        if cache_file is not None:
            with contextlib.suppress(OSError):
                _write_npz(cache_file, arrays)
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return ImageData(t["train_x"], t["train_y"], t["test_x"], t["test_y"], 10,
                     [str(i) for i in range(10)])


def _digits_arrays() -> dict[str, np.ndarray]:
    """The train / test arrays of :func:`load_digits`, from scikit-learn."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(12345)
    test_idx: list[int] = []
    train_idx: list[int] = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = len(idx) // 4
        test_idx.extend(idx[:n_test])
        train_idx.extend(idx[n_test:])
    train, test = np.sort(train_idx), np.sort(test_idx)
    x = images[:, None, :, :]
    return {"train_x": x[train], "train_y": labels[train], "test_x": x[test],
            "test_y": labels[test]}


# ---------------------------------------------------------------------------------- CIFAR
class _CifarSpec(TypedDict):
    """Where one CIFAR variant's pickle files are and how they name their fields."""

    folder: str
    train: list[str]
    test: list[str]
    label_key: bytes
    meta: str
    names_key: bytes
    classes: int


_CIFAR: dict[str, _CifarSpec] = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"], label_key=b"labels", meta="batches.meta",
                    names_key=b"label_names", classes=10),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"],
                     label_key=b"fine_labels", meta="meta", names_key=b"fine_label_names",
                     classes=100),
}


def _is_image_folder(root: Path) -> bool:
    train = root / "train"
    return train.is_dir() and any(p.is_dir() for p in train.iterdir())


def load_cifar(name: str, data_root: str | None, download: bool = False,
               cache_dir: str | None = None) -> ImageData:
    """CIFAR-10/100 from the python-pickle layout or from an image-folder layout.

    ``data_root`` may be the pickle folder itself (``cifar-10-batches-py``), its parent, or an
    image-folder root with ``train/<class>/`` and ``test/<class>/``. ``download=True`` fetches the
    pickle layout through torchvision into ``data_root`` (or the cache directory).
    """
    spec = _CIFAR[name]
    root = Path(data_root) if data_root else default_cache_dir() / "downloads"
    if root.is_dir() and _is_image_folder(root):
        data = load_image_folder(str(root), cache_dir=cache_dir)
        if data.num_classes != spec["classes"]:
            raise ValueError(f"invalid data_root={str(root)!r}: found {data.num_classes} class "
                             f"folders, {name} has {spec['classes']}")
        return data
    folder = root if (root / spec["test"][0]).exists() else root / spec["folder"]
    if not (folder / spec["test"][0]).exists():
        if not download:
            raise ValueError(
                f"invalid data_root={str(root)!r}: no {spec['folder']} pickle files and no "
                "train/<class>/ folders found there; pass a directory with either layout or "
                "download=True")
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        root.mkdir(parents=True, exist_ok=True)
        try:
            cls(str(root), train=True, download=True)
        except OSError as e:  # no network (urllib's URLError is an OSError), a full disk, ...
            raise ValueError(
                f"invalid download=True: could not download {name} into {str(root)!r} "
                f"({' '.join(str(e).split())}); give data_root= a local copy") from None
        folder = root / spec["folder"]

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            with open(folder / f, "rb") as fh:
                entry = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[spec["label_key"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = read(spec["train"])
    test_x, test_y = read(spec["test"])
    names = [str(i) for i in range(spec["classes"])]
    meta_path = folder / spec["meta"]
    if meta_path.exists():
        with open(meta_path, "rb") as fh:
            meta = pickle.load(fh, encoding="bytes")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[spec["names_key"]]]
    return ImageData(torch.from_numpy(train_x), torch.from_numpy(train_y),
                     torch.from_numpy(test_x), torch.from_numpy(test_y), spec["classes"], names)


# ---------------------------------------------------------------------------------- folders
def _list_split(split_dir: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, cls in enumerate(classes):
        d = split_dir / cls
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(label)
    return files, labels


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _decode_all(files: list[Path]) -> np.ndarray:
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        arrays = list(pool.map(_decode, files, chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"invalid image folder: images have different sizes {sorted(shapes)[:4]}; "
                         "all images must share one size")
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()


def load_image_folder(data_root: str, cache_dir: str | None = None) -> ImageData:
    """An image-folder dataset: ``train/<class>/*``, ``test/<class>/*``, optional ``val/<class>/*``.

    Class ids follow the sorted class-folder names of ``train/``. ``val/`` holds trusted clean
    labels (as with real noisy datasets whose training labels cannot be trusted). Decoded once
    and cached as ``.npz`` under the cache directory, keyed by the folder's path and file list.
    """
    root = Path(data_root)
    if not _is_image_folder(root):
        raise ValueError(f"invalid data_root={data_root!r}: expected train/<class>/ folders")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    splits = {s: _list_split(root / s, classes) for s in ("train", "test", "val")
              if (root / s).is_dir()}
    if "test" not in splits or not splits["test"][0]:
        raise ValueError(f"invalid data_root={data_root!r}: expected test/<class>/ folders")
    digest = hashlib.sha1()
    digest.update(str(root.resolve()).encode())
    for s, (files, _) in sorted(splits.items()):
        digest.update(f"{s}:{len(files)}:{files[0].name}:{files[-1].name}".encode())
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_file = cache / f"imagefolder-{digest.hexdigest()[:16]}.npz"
    arrays: dict[str, np.ndarray]
    if cache_file.exists():
        arrays = _read_npz(cache_file)
    else:
        n = sum(len(files) for files, _ in splits.values())
        # once per folder and cache: say what the wait is and where the result goes
        print(f"reweight-gym: decoding the {n:,} images of {root} into {cache_file} "
              "(once; later runs read the cache)", file=sys.stderr, flush=True)
        arrays = {}
        for s, (files, labels) in splits.items():
            arrays[f"{s}_x"] = _decode_all(files)
            arrays[f"{s}_y"] = np.asarray(labels, dtype=np.int64)
        _write_npz(cache_file, arrays)
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return ImageData(t["train_x"], t["train_y"], t["test_x"], t["test_y"], len(classes), classes,
                     t.get("val_x"), t.get("val_y"))
