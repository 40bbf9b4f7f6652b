"""``nrt``: NRT's weigher (:mod:`.weigher`), its nine characteristics (:mod:`.characteristics`),
the neural regression tree with its cut-point controller (:mod:`.tree`) and rule extraction
(:mod:`.rules`)."""

from reweight_gym.baselines.nrt.characteristics import (
    CHARACTERISTICS,
    RunningStandardizer,
    compute_characteristics,
)
from reweight_gym.baselines.nrt.rules import extract_rules
from reweight_gym.baselines.nrt.tree import (
    CutAction,
    CutPointController,
    NeuralRegressionTree,
    hard_bins,
    soft_bins,
)
from reweight_gym.baselines.nrt.weigher import NRTWeigher

__all__ = ["CHARACTERISTICS", "CutAction", "CutPointController", "NRTWeigher",
           "NeuralRegressionTree", "RunningStandardizer", "compute_characteristics",
           "extract_rules", "hard_bins", "soft_bins"]
