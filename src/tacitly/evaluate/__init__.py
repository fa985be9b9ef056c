"""Metrics and reports shared by every stage (reward models, alignment, behaviour models).

Examples
--------
>>> from tacitly.evaluate import pairwise_accuracy
>>> pairwise_accuracy([1.0, 0.5], [0.0, 0.5])
0.5
"""

from tacitly.evaluate.correlation import kendall_tau_b, ranking_correlation, score_correlations
from tacitly.evaluate.length import (
    LengthBiasReport,
    LengthResidualiser,
    length_bias_report,
    pair_lengths,
    response_length,
)
from tacitly.evaluate.metrics import bootstrap_ci, pairwise_accuracy, pairwise_correct
from tacitly.evaluate.pairwise import accuracy_report, row_subsets

__all__ = [
    "LengthBiasReport",
    "LengthResidualiser",
    "accuracy_report",
    "bootstrap_ci",
    "kendall_tau_b",
    "length_bias_report",
    "pair_lengths",
    "pairwise_accuracy",
    "pairwise_correct",
    "ranking_correlation",
    "response_length",
    "row_subsets",
    "score_correlations",
]
