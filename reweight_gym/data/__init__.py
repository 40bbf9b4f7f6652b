"""Datasets as uint8 tensors, seeded corruptions and disjoint splits."""

from reweight_gym.data.corruption import (
    class_counts,
    corrupt_labels,
    long_tail_counts,
    noise_transition,
    step_counts,
)
from reweight_gym.data.datasets import (
    ImageData,
    default_cache_dir,
    load_cifar,
    load_dataset,
    load_digits,
    load_image_folder,
)
from reweight_gym.data.splits import DataSplits, build_splits, default_meta_size

__all__ = [
    "DataSplits", "ImageData", "build_splits", "class_counts", "corrupt_labels",
    "default_cache_dir", "default_meta_size", "load_cifar", "load_dataset", "load_digits",
    "load_image_folder", "long_tail_counts", "noise_transition", "step_counts",
]
