"""How well rewards agree with ratings: Pearson, Spearman and Kendall τ-b, with p-values.

- :func:`score_correlations`: one reward and one rating per response (e.g. the Vicuna-bench
  GPT-4 rubric scores of :func:`tacitly.data.ratings.load_vicuna_ratings`).
- :func:`ranking_correlation`: several models' responses to the same prompts and an Elo table;
  each model's mean reward against its Elo, over models.

Everything is numpy (no scipy in the core package) and agrees with ``scipy.stats``:

- Pearson's r, and its two-sided p-value from Student's t with n − 2 degrees of freedom (exact
  for normal data; ``scipy.stats.pearsonr``).
- Spearman's ρ: Pearson's r of ranks, tied values sharing their mean rank; its p-value from the
  same t approximation (``scipy.stats.spearmanr``).
- Kendall's τ-b, which corrects for ties on either side, counted in O(n log² n); its p-value
  from the normal approximation with the tie-corrected variance
  (``scipy.stats.kendalltau(method="asymptotic")``). scipy switches to an exact distribution
  for n ≤ 33 without ties; below about 10 responses the approximation is rough.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tacitly.errors import InputError
from tacitly.evaluate.length import average_ranks

__all__ = ["MIN_MODELS", "kendall_tau_b", "ranking_correlation", "score_correlations"]

FloatArray = npt.NDArray[np.float64]
#: Fewest models a ranking correlation is computed over.
MIN_MODELS = 3
_METHODS = ("pearson", "spearman", "kendall")


def score_correlations(
    scores: npt.ArrayLike,
    ratings: npt.ArrayLike,
    *,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Pearson, Spearman and Kendall τ-b between scores and ratings, with p-values.

    Parameters
    ----------
    scores:
        One reward per response.
    ratings:
        One rating per response (e.g. the mean of a judge's scores), same length.
    n_boot:
        Percentile-bootstrap resamples of 95% intervals of the three coefficients; 0 for none
        (default: 0). Each resample costs one Kendall count, O(n log² n).
    seed:
        Seed of the bootstrap (default: 0).

    Returns
    -------
    dict
        ``n`` (pairs used), ``dropped`` (pairs with a NaN or infinite value, left out),
        ``pearson``, ``pearson_p``, ``spearman``, ``spearman_p``, ``kendall_tau_b``,
        ``kendall_p``; with ``n_boot`` also ``pearson_ci95``, ``spearman_ci95``,
        ``kendall_ci95``. A coefficient is None where it is undefined (a constant side).

    Raises
    ------
    InputError
        If the inputs are not equal-length 1-d numbers, or fewer than 3 pairs are finite.

    Examples
    --------
    >>> result = score_correlations([0.1, 0.4, 0.3, 0.9], [1, 3, 3, 5])
    >>> round(result["pearson"], 4), round(result["spearman"], 4), round(result["kendall_tau_b"], 4)
    (0.9596, 0.9487, 0.9129)
    """
    x, y, dropped = _finite_pairs(scores, ratings, names=("scores", "ratings"))
    if x.size < 3:
        raise InputError(
            f"{x.size} finite pairs", field="scores", expected="at least 3 (score, rating) pairs"
        )
    result: dict[str, Any] = {"n": int(x.size), "dropped": dropped}
    result.update(_coefficients_with_p(x, y))
    if n_boot > 0:
        result.update(_bootstrap_intervals(x, y, n_boot=n_boot, seed=seed))
    elif n_boot < 0:
        raise InputError(f"n_boot is {n_boot}", field="n_boot", expected=">= 0")
    return result


def ranking_correlation(
    model_rewards: Mapping[str, npt.ArrayLike], elo: Mapping[str, float]
) -> dict[str, Any]:
    """Correlation, over models, between each model's mean reward and its Elo rating.

    Parameters
    ----------
    model_rewards:
        Model name → the rewards of its responses (to the same prompts for every model, so that
        the means are comparable).
    elo:
        Model name → Elo rating (e.g. from Chatbot Arena), the same models.

    Returns
    -------
    dict
        ``n_models``; ``models``: name → ``{"mean_reward", "elo", "n"}`` (sorted by name);
        ``pearson``, ``pearson_p``, ``spearman``, ``spearman_p``, ``kendall_tau_b``,
        ``kendall_p`` as for :func:`score_correlations` (over models).

    Raises
    ------
    InputError
        If fewer than 3 models are given, a model is in one mapping but not the other, a
        model has no rewards or a non-finite one, or an Elo is not a finite number.

    Examples
    --------
    >>> rewards = {"a": [0.1, 0.3], "b": [0.5, 0.7], "c": [0.2, 0.4]}
    >>> result = ranking_correlation(rewards, {"a": 1000, "b": 1100, "c": 1250})
    >>> result["spearman"], result["kendall_tau_b"], result["models"]["a"]["mean_reward"]
    (0.5, 0.3333333333333333, 0.2)
    """
    missing_elo = sorted(set(model_rewards) - set(elo))
    missing_rewards = sorted(set(elo) - set(model_rewards))
    if missing_elo or missing_rewards:
        raise InputError(
            f"models without an Elo: {missing_elo}; models without rewards: {missing_rewards}",
            field="elo",
            expected="the same models in both",
        )
    names = sorted(model_rewards)
    if len(names) < MIN_MODELS:
        raise InputError(
            f"{len(names)} models", field="model_rewards", expected=f"at least {MIN_MODELS}"
        )
    models = {name: _model_summary(name, model_rewards[name], elo[name]) for name in names}
    means = np.array([models[name]["mean_reward"] for name in names])
    ratings = np.array([models[name]["elo"] for name in names])
    return {"n_models": len(names), "models": models, **_coefficients_with_p(means, ratings)}


def kendall_tau_b(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float | None, float | None]:
    """Kendall's τ-b and its two-sided asymptotic p-value.

    τ-b = (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)), where n₀ = n(n − 1)/2 and n₁, n₂
    count the pairs tied in ``x`` and in ``y``. Both values are None when a side is constant;
    the p-value is None for fewer than 3 values.

    Parameters
    ----------
    x, y:
        Equal-length finite numbers.

    Examples
    --------
    >>> tau, p = kendall_tau_b([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    >>> tau, round(p, 4)
    (0.6, 0.1416)
    """
    a, b, dropped = _finite_pairs(x, y, names=("x", "y"))
    if dropped:
        raise InputError(f"{dropped} NaN or infinite values", field="x", expected="finite")
    return _kendall(a, b)


# --------------------------------------------------------------------------------------------
# coefficients


def _finite_pairs(
    x: npt.ArrayLike, y: npt.ArrayLike, *, names: tuple[str, str]
) -> tuple[FloatArray, FloatArray, int]:
    try:
        a = np.asarray(x, dtype=np.float64)
        b = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"not numeric: {error}", field=names[0], expected="numbers") from None
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise InputError(
            f"shapes {a.shape} and {b.shape}",
            field=names[1],
            expected="two one-dimensional sequences of the same length",
        )
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep], int(a.size - keep.sum())


def _pearson(x: FloatArray, y: FloatArray) -> float | None:
    a = x - x.mean()
    b = y - y.mean()
    scale = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if scale == 0.0:
        return None
    return float(np.clip(float((a * b).sum()) / scale, -1.0, 1.0))


def _spearman(x: FloatArray, y: FloatArray) -> float | None:
    return _pearson(average_ranks(x), average_ranks(y))


def _kendall(x: FloatArray, y: FloatArray) -> tuple[float | None, float | None]:
    n = x.size
    pairs = n * (n - 1) / 2.0
    x_ties, y_ties = _tie_counts(x), _tie_counts(y)
    tied_x = float((x_ties * (x_ties - 1)).sum()) / 2.0
    tied_y = float((y_ties * (y_ties - 1)).sum()) / 2.0
    joint = _tie_counts(x + 1j * y)
    tied_both = float((joint * (joint - 1)).sum()) / 2.0
    discordant = float(_discordant_pairs(x, y))
    concordant = pairs - tied_x - tied_y + tied_both - discordant
    difference = concordant - discordant
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    if denominator == 0.0:
        return None, None
    tau = float(np.clip(difference / denominator, -1.0, 1.0))
    if n < 3:
        return tau, None
    m = float(n * (n - 1))
    variance = (
        (m * (2 * n + 5) - _tie_sum(x_ties, 2.0, 5.0) - _tie_sum(y_ties, 2.0, 5.0)) / 18.0
        + 2.0 * tied_x * tied_y / m
        + _tie_sum(x_ties, 1.0, -2.0) * _tie_sum(y_ties, 1.0, -2.0) / (9.0 * m * (n - 2))
    )
    p = math.erfc(abs(difference) / math.sqrt(2.0 * variance)) if variance > 0 else None
    return tau, p


def _tie_counts(values: npt.NDArray[Any]) -> FloatArray:
    """Sizes of the groups of equal values that hold more than one value."""
    _, counts = np.unique(values, return_counts=True)
    return counts[counts > 1].astype(np.float64)


def _tie_sum(counts: FloatArray, slope: float, intercept: float) -> float:
    """Σ t(t − 1)(slope·t + intercept) over tie groups of size t."""
    return float((counts * (counts - 1) * (slope * counts + intercept)).sum())


def _discordant_pairs(x: FloatArray, y: FloatArray) -> int:
    """Pairs ordered strictly one way by ``x`` and strictly the other way by ``y``.

    Sorted by ``x`` (then ``y``), a discordant pair is an inversion of the ``y`` sequence;
    pairs tied in ``x`` are in ascending ``y`` order and so never count.
    """
    order = np.lexsort((y, x))
    _, ranks = np.unique(y[order], return_inverse=True)
    return _strict_inversions(ranks.astype(np.int64))


def _strict_inversions(values: npt.NDArray[np.int64]) -> int:
    """Pairs i < j with values[i] > values[j]: a bottom-up merge sort, each level in numpy.

    At width w the sequence is sorted within blocks of w; each right block is matched with the
    left block before it, and an offset of ``pair × (max + 1)`` keeps the pairs apart so that
    one global ``searchsorted`` counts, for every right value, the greater left values.
    """
    n = values.size
    if n < 2:
        return 0
    offset = int(values.max()) + 1
    position = np.arange(n)
    inversions = 0
    width = 1
    while width < n:
        block = position // width
        pair = block // 2
        right = block % 2 == 1
        keys = values + pair * offset
        left_keys, left_pair = keys[~right], pair[~right]
        right_keys, right_pair = keys[right], pair[right]
        left_end = np.searchsorted(left_pair, right_pair, side="right")
        not_greater = np.searchsorted(left_keys, right_keys, side="right")
        inversions += int((left_end - not_greater).sum())
        values = np.sort(keys) - pair * offset
        width *= 2
    return inversions


def _t_test_p(r: float | None, n: int) -> float | None:
    """Two-sided p of a correlation r over n pairs under Student's t with n − 2 df.

    P(|T| ≥ |t|) with t² = r²(n − 2)/(1 − r²) equals the regularised incomplete beta function
    I_{1−r²}((n − 2)/2, 1/2).
    """
    if r is None or n < 3:
        return None
    return _regularised_beta((n - 2) / 2.0, 0.5, 1.0 - r * r)


def _regularised_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz), on the side where it converges."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300

    def guarded(value: float) -> float:
        return tiny if abs(value) < tiny else value

    c = 1.0
    d = 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0))
    fraction = d
    for m in range(1, 10_000):
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even * d)
        c = guarded(1.0 + even / c)
        fraction *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 / guarded(1.0 + odd * d)
        c = guarded(1.0 + odd / c)
        step = d * c
        fraction *= step
        if abs(step - 1.0) < 1e-15:
            break
    return fraction


def _coefficients_with_p(x: FloatArray, y: FloatArray) -> dict[str, float | None]:
    pearson = _pearson(x, y)
    spearman = _spearman(x, y)
    tau, tau_p = _kendall(x, y)
    return {
        "pearson": pearson,
        "pearson_p": _t_test_p(pearson, x.size),
        "spearman": spearman,
        "spearman_p": _t_test_p(spearman, x.size),
        "kendall_tau_b": tau,
        "kendall_p": tau_p,
    }


def _bootstrap_intervals(
    x: FloatArray, y: FloatArray, *, n_boot: int, seed: int
) -> dict[str, list[float] | None]:
    """Percentile 95% intervals; resamples where a coefficient is undefined are left out."""
    statistics: dict[str, Callable[[FloatArray, FloatArray], float | None]] = {
        "pearson": _pearson,
        "spearman": _spearman,
        "kendall": lambda a, b: _kendall(a, b)[0],
    }
    rng = np.random.default_rng(seed)
    draws = np.full((n_boot, len(_METHODS)), np.nan)
    for row in range(n_boot):
        index = rng.integers(0, x.size, size=x.size)
        for column, method in enumerate(_METHODS):
            value = statistics[method](x[index], y[index])
            if value is not None:
                draws[row, column] = value
    intervals: dict[str, list[float] | None] = {}
    for column, method in enumerate(_METHODS):
        finite = draws[:, column][np.isfinite(draws[:, column])]
        intervals[f"{method}_ci95"] = (
            [float(v) for v in np.quantile(finite, [0.025, 0.975])] if finite.size else None
        )
    return intervals


def _model_summary(name: str, rewards: npt.ArrayLike, elo: float) -> dict[str, Any]:
    try:
        values = np.asarray(rewards, dtype=np.float64).ravel()
        rating = float(elo)
    except (TypeError, ValueError) as error:
        raise InputError(f"model {name!r}: not numeric ({error})", field=name) from None
    if values.size == 0:
        raise InputError(f"model {name!r} has no rewards", field=name, expected="rewards")
    if not np.isfinite(values).all():
        raise InputError(f"model {name!r} has a NaN or infinite reward", field=name)
    if not math.isfinite(rating):
        raise InputError(f"model {name!r} has Elo {rating}", field=name, expected="a number")
    return {"mean_reward": float(values.mean()), "elo": rating, "n": int(values.size)}
