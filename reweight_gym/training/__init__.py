"""The training substrate: Trainer, DuplicateTrainer, the Weigher contract, characteristics."""

from reweight_gym.training.characteristics import (
    FEATURE_SETS,
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
from reweight_gym.training.functional import functional_forward, sgd_lookahead, trainable_params
from reweight_gym.training.pipeline import BatchPipeline, EpochSampler, MetaSampler
from reweight_gym.training.schedule import learning_rate
from reweight_gym.training.trainer import (
    DuplicateTrainer,
    StageStats,
    StepResult,
    Trainer,
    resolve_device,
)
from reweight_gym.training.weigher import (
    Batch,
    LinearTanhWeigher,
    TrainView,
    UniformWeigher,
    WeighContext,
    Weigher,
    Weighting,
)

__all__ = [
    "FEATURE_SETS", "Batch", "BatchPipeline", "DuplicateTrainer", "EpochSampler",
    "LinearTanhWeigher", "MetaSampler", "SampleHistory", "StageStats", "StepResult",
    "TrainView", "Trainer", "UniformWeigher", "WeighContext", "Weigher", "Weighting",
    "class_mean_loss", "class_proportion", "density", "entropy", "feature_dim",
    "feature_names", "functional_forward", "grad_norm", "learning_rate", "margin",
    "resolve_device", "sample_features", "sgd_lookahead", "standardize", "trainable_params",
]
