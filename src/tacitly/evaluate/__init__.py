"""Metrics and reports shared by every stage (reward models, alignment, behaviour models).

Examples
--------
>>> from tacitly.evaluate import pairwise_accuracy
>>> pairwise_accuracy([1.0, 0.5], [0.0, 0.5])
0.5
"""

from tacitly.evaluate.metrics import bootstrap_ci, pairwise_accuracy, pairwise_correct

__all__ = ["bootstrap_ci", "pairwise_accuracy", "pairwise_correct"]
