"""Pairwise preference metrics and bootstrap confidence intervals.

Accuracy follows RewardBench's rule: a pair counts as correct only when the chosen response's
reward is strictly greater than the rejected one's, so a tie (and a NaN reward) counts as wrong.
A model that gives every response the same score therefore scores 0, not 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tacitly.errors import InputError

__all__ = ["bootstrap_ci", "pairwise_accuracy", "pairwise_correct"]

ArrayLike = npt.ArrayLike

# Cap on the (resamples × values) index matrix drawn at once, so that a CI over a million
# pairs does not allocate gigabytes.
_MAX_DRAWN = 10_000_000


def _as_vector(values: ArrayLike, *, name: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"not numeric: {error}", field=name, expected="numbers") from None
    if array.ndim != 1:
        raise InputError(
            f"has shape {array.shape}", field=name, expected="a one-dimensional sequence"
        )
    return array


def pairwise_correct(
    chosen_rewards: ArrayLike, rejected_rewards: ArrayLike
) -> npt.NDArray[np.bool_]:
    """Whether each pair is ranked correctly (chosen strictly above rejected).

    Parameters
    ----------
    chosen_rewards:
        Reward of the chosen response of each pair.
    rejected_rewards:
        Reward of the rejected response of each pair, same length.

    Returns
    -------
    numpy.ndarray
        Boolean per pair; ties and NaNs are False (RewardBench's rule).

    Raises
    ------
    InputError
        If the two are not one-dimensional numeric sequences of the same length.

    Examples
    --------
    >>> pairwise_correct([2.0, 1.0, float("nan")], [1.0, 1.0, 0.0]).tolist()
    [True, False, False]
    """
    chosen = _as_vector(chosen_rewards, name="chosen_rewards")
    rejected = _as_vector(rejected_rewards, name="rejected_rewards")
    if chosen.shape != rejected.shape:
        raise InputError(
            f"{chosen.size} chosen rewards but {rejected.size} rejected rewards",
            field="rejected_rewards",
            expected="one reward per pair on each side",
        )
    return np.greater(chosen, rejected)


def pairwise_accuracy(chosen_rewards: ArrayLike, rejected_rewards: ArrayLike) -> float:
    """Fraction of pairs whose chosen response gets the strictly higher reward.

    Parameters
    ----------
    chosen_rewards:
        Reward of the chosen response of each pair.
    rejected_rewards:
        Reward of the rejected response of each pair, same length.

    Returns
    -------
    float
        Accuracy in [0, 1]; a tie or a NaN counts as wrong (RewardBench's rule).

    Raises
    ------
    InputError
        If there are no pairs, or the inputs are malformed (see :func:`pairwise_correct`).

    Examples
    --------
    >>> pairwise_accuracy([3.0, 1.0, 0.0, 2.0], [1.0, 1.0, 1.0, -1.0])
    0.5
    """
    correct = pairwise_correct(chosen_rewards, rejected_rewards)
    if correct.size == 0:
        raise InputError("no pairs to score", field="chosen_rewards", expected="at least one pair")
    return float(correct.mean())


def bootstrap_ci(
    values: ArrayLike | Sequence[bool],
    *,
    n: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a mean.

    For an accuracy, pass the per-pair correctness (:func:`pairwise_correct`).

    Parameters
    ----------
    values:
        One value per independent unit (pair, reader, ...).
    n:
        Number of bootstrap resamples (default: 1000).
    seed:
        Seed of the resampling, so that reports are reproducible (default: 0).
    confidence:
        Coverage of the interval (default: 0.95).

    Returns
    -------
    tuple of float
        ``(low, high)``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
        the resampled means.

    Raises
    ------
    InputError
        If ``values`` is empty, not one-dimensional, or contains NaN; if ``n < 1`` or
        ``confidence`` is not in (0, 1).

    Examples
    --------
    >>> low, high = bootstrap_ci([1, 1, 1, 0, 1, 0, 1, 1], n=2000, seed=0)
    >>> bool(low < 0.75 < high)
    True
    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    array = _as_vector(values, name="values")
    if array.size == 0:
        raise InputError("no values to resample", field="values", expected="at least one value")
    if np.isnan(array).any():
        raise InputError("contains NaN", field="values", expected="finite numbers")
    if n < 1:
        raise InputError(f"n is {n}", field="n", expected="at least 1 resample")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence is {confidence}", field="confidence", expected="in (0, 1)")
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_DRAWN // array.size)
    means = np.concatenate(
        [
            array[rng.integers(0, array.size, size=(min(chunk, n - start), array.size))].mean(
                axis=1
            )
            for start in range(0, n, chunk)
        ]
    )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)
