"""The training substrate: Trainer, DuplicateTrainer, the Weigher contract, characteristics.

The names below are imported on first use, so ``import reweight_gym.training.weigher`` (what
every weigher does) does not import the trainer.
"""

from reweight_gym._lazy import lazy_exports

_MODULES = {
    "reweight_gym.training.characteristics": (
        "FEATURE_SETS", "SampleHistory", "class_mean_loss", "class_proportion", "density",
        "entropy", "feature_dim", "feature_names", "grad_norm", "margin", "sample_features",
        "standardize"),
    "reweight_gym.training.functional": ("functional_forward", "trainable_params"),
    "reweight_gym.training.pipeline": ("BatchPipeline", "EpochSampler", "MetaSampler"),
    "reweight_gym.training.schedule": ("learning_rate",),
    "reweight_gym.training.stats": ("StageStats", "WeightTotals"),
    "reweight_gym.training.trainer": ("DuplicateTrainer", "StepResult", "Trainer",
                                      "resolve_device"),
    "reweight_gym.training.weigher": ("Batch", "LinearTanhWeigher", "TrainView",
                                      "UniformWeigher", "WeighContext", "Weigher", "Weighting"),
}

__getattr__, __dir__ = lazy_exports(
    __name__, {name: module for module, names in _MODULES.items() for name in names})

__all__ = sorted(name for names in _MODULES.values() for name in names)
