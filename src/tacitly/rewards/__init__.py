"""Reward models behind one interface: ``score(prompts, responses)`` and ``compare(rows)``.

Gaze-augmented reward models (baseline, GazeConcat, GazeAdd) live in :mod:`tacitly.rewards.gaze`;
the pairwise (Bradley–Terry) trainer shared by every neural reward model in
:mod:`tacitly.rewards.training`; the follow-up likelihood reward (FLR) in
:mod:`tacitly.rewards.followup` and its critic in :mod:`tacitly.rewards.critic`; the
implicit-behaviour reward (IFllm) in :mod:`tacitly.rewards.behavior` (import it from there: it
needs scikit-learn and LightGBM).
"""

from tacitly.rewards.followup import (
    AspectFollowups,
    FollowupReward,
    FollowupRewardConfig,
    FollowupSet,
    load_followups,
    user_layout,
)
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
    "AspectFollowups",
    "FollowupReward",
    "FollowupRewardConfig",
    "FollowupSet",
    "GazeProjector",
    "GazeRewardConfig",
    "GazeRewardModel",
    "Mode",
    "PairwiseTrainingConfig",
    "TrainingResult",
    "evaluate_pairwise",
    "load_followups",
    "mode_from_flags",
    "train_pairwise",
    "user_layout",
]
