"""Synthetic gaze: predicted human reading measures for any text.

Recorded eye tracking exists for few texts; GazeReward's key move is to *predict* reading
measures (nFix, FFD, GPT, TRT, fixProp per word) and feed them to a reward model.
:class:`GazePredictor` does that with weights shipped in the package (trained on the CMCL 2021
/ ZuCo data, CC BY 4.0) and retrained with ``tacitly gaze train``.
"""

from tacitly.signals.synthetic.cache import PredictionCache, text_hash
from tacitly.signals.synthetic.predictor import SHIPPED_WEIGHTS, GazePredictor, shipped_weights
from tacitly.signals.synthetic.training import train_gaze_predictor

__all__ = [
    "SHIPPED_WEIGHTS",
    "GazePredictor",
    "PredictionCache",
    "shipped_weights",
    "text_hash",
    "train_gaze_predictor",
]
