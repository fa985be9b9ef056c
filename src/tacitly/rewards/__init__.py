"""Reward models behind one interface: ``score(prompts, responses)`` and ``compare(rows)``.

Gaze-augmented reward models (baseline, GazeConcat, GazeAdd) live in :mod:`tacitly.rewards.gaze`;
the pairwise (Bradley–Terry) trainer shared by every neural reward model in
:mod:`tacitly.rewards.training`.
"""

from tacitly.rewards.gaze import (
    EYE_TOKENS,
    GazeProjector,
    GazeRewardConfig,
    GazeRewardModel,
    Mode,
    mode_from_flags,
)
from tacitly.rewards.training import (
    PairwiseTrainingConfig,
    TrainingResult,
    evaluate_pairwise,
    train_pairwise,
)

__all__ = [
    "EYE_TOKENS",
    "GazeProjector",
    "GazeRewardConfig",
    "GazeRewardModel",
    "Mode",
    "PairwiseTrainingConfig",
    "TrainingResult",
    "evaluate_pairwise",
    "mode_from_flags",
    "train_pairwise",
]
