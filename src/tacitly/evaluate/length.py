"""Response length, the confound every preference set carries.

Human raters (and the models that imitate them) tend to prefer longer answers, so a reward
model can look accurate by learning length alone. This module measures that
(:func:`length_bias_report`: accuracy on the pairs whose chosen answer is the shorter one, the
"longer wins" baseline, reward–length correlations) and offers a remedy applied after training
(:class:`LengthResidualiser`: a reward with its log-length trend removed). The other remedy,
length-balanced weighting of training pairs, is ``PairwiseTrainingConfig.length_balance``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tacitly.errors import InputError
from tacitly.evaluate.metrics import bootstrap_ci, pairwise_accuracy, pairwise_correct

__all__ = [
    "LengthBiasReport",
    "LengthResidualiser",
    "average_ranks",
    "length_bias_report",
    "pair_lengths",
    "pearson",
    "response_length",
    "spearman",
]

LengthUnit = Literal["chars", "words"]
_SIDES = ("chosen", "rejected")


def response_length(
    response: str | Sequence[Mapping[str, Any]], *, unit: LengthUnit = "chars"
) -> int:
    """Length of a response: its text, or the content of all its messages together.

    Parameters
    ----------
    response:
        A plain string, or a list of ``{"role", "content"}`` messages (TRL's conversational
        form of ``chosen`` / ``rejected``).
    unit:
        ``"chars"`` (characters of content, default) or ``"words"`` (whitespace-separated).

    Examples
    --------
    >>> response_length([{"role": "assistant", "content": "Hello there"}])
    11
    >>> response_length("Hello there, friend", unit="words")
    3
    """
    if isinstance(response, str):
        texts = [response]
    else:
        texts = []
        for index, message in enumerate(response, start=1):
            content = message.get("content") if isinstance(message, Mapping) else None
            if not isinstance(content, str):
                raise InputError(
                    "message has no text content",
                    row=index,
                    field="content",
                    expected='{"role": ..., "content": "text"}',
                )
            texts.append(content)
    if unit == "chars":
        return sum(len(text) for text in texts)
    if unit == "words":
        return sum(len(text.split()) for text in texts)
    raise InputError(f"unknown unit {unit!r}", field="unit", expected="'chars' or 'words'")


# --------------------------------------------------------------------------------------------
# length bias of a reward model


def pair_lengths(
    rows: Sequence[Mapping[str, Any]], *, unit: LengthUnit = "chars"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Length of the chosen and of the rejected response of every preference row.

    Parameters
    ----------
    rows:
        Preference rows with ``chosen`` and ``rejected`` (a string or a list of messages).
    unit:
        ``"chars"`` or ``"words"`` (default: ``"chars"``), as for :func:`response_length`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(chosen_lengths, rejected_lengths)``, one integer per row.

    Raises
    ------
    InputError
        If a row is not a mapping or lacks a side (naming the 1-based row and the side).

    Examples
    --------
    >>> chosen, rejected = pair_lengths([{"chosen": "a b c", "rejected": "a"}])
    >>> chosen.tolist(), rejected.tolist()
    ([5], [1])
    """
    lengths = np.zeros((len(rows), 2), dtype=np.int64)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise InputError("not a preference row", row=number, expected="a mapping")
        for column, side in enumerate(_SIDES):
            response = row.get(side)
            if response is None or (not isinstance(response, str) and len(response) == 0):
                raise InputError(
                    f"the row has no {side} response",
                    row=number,
                    field=side,
                    expected="a string or a non-empty list of messages",
                )
            try:
                lengths[number - 1, column] = response_length(response, unit=unit)
            except InputError as error:
                raise InputError(
                    error.message, row=number, field=side, expected=error.expected
                ) from None
    return lengths[:, 0], lengths[:, 1]


@dataclass(frozen=True)
class LengthBiasReport:
    """How much a reward model's ranking of pairs follows response length.

    Accuracies follow RewardBench's rule (a tie or a NaN reward counts as wrong). A group with
    no pairs has ``n_… = 0`` and accuracy None; a correlation that is undefined (fewer than two
    finite values, or a constant input) is None.

    Attributes
    ----------
    n:
        Number of pairs.
    unit:
        Unit of the lengths (``"chars"`` or ``"words"``).
    accuracy, accuracy_ci95:
        Accuracy over all pairs and its percentile-bootstrap 95% interval.
    chosen_longer_share:
        Share of pairs whose chosen response is strictly longer.
    n_chosen_shorter, accuracy_chosen_shorter, accuracy_chosen_shorter_ci95:
        Pairs whose chosen response is strictly shorter: count, accuracy and its bootstrap 95%
        interval. A model that learned "longer is better" fails here.
    n_chosen_longer, accuracy_chosen_longer:
        Pairs whose chosen response is strictly longer.
    n_equal_length, accuracy_equal_length:
        Pairs whose responses have the same length.
    longer_wins_accuracy:
        Accuracy of the length-only rule "the longer response wins" (a length tie is wrong),
        which equals ``chosen_longer_share``; the bar a reward model must clear to show it
        learned more than length.
    reward_length_pearson, reward_length_spearman:
        Correlation between reward and length over all ``2 n`` responses (both sides).
    difference_pearson, difference_spearman:
        Correlation, over pairs, between the reward difference (chosen − rejected) and the
        length difference (chosen − rejected).
    """

    n: int
    unit: str
    accuracy: float
    accuracy_ci95: tuple[float, float]
    chosen_longer_share: float
    n_chosen_shorter: int
    accuracy_chosen_shorter: float | None
    accuracy_chosen_shorter_ci95: tuple[float, float] | None
    n_chosen_longer: int
    accuracy_chosen_longer: float | None
    n_equal_length: int
    accuracy_equal_length: float | None
    longer_wins_accuracy: float
    reward_length_pearson: float | None
    reward_length_spearman: float | None
    difference_pearson: float | None
    difference_spearman: float | None

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (intervals become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }


def length_bias_report(
    rows: Sequence[Mapping[str, Any]],
    chosen_rewards: npt.ArrayLike,
    rejected_rewards: npt.ArrayLike,
    *,
    unit: LengthUnit = "chars",
    bootstrap_resamples: int = 1000,
    seed: int = 0,
) -> LengthBiasReport:
    """Accuracy split by which response is longer, and how rewards correlate with length.

    Parameters
    ----------
    rows:
        The scored preference rows (their ``chosen`` and ``rejected`` give the lengths).
    chosen_rewards, rejected_rewards:
        One reward per row for each side, in the order of ``rows``.
    unit:
        ``"chars"`` or ``"words"`` (default: ``"chars"``).
    bootstrap_resamples:
        Resamples of the bootstrap intervals (default: 1000).
    seed:
        Seed of the bootstrap (default: 0).

    Returns
    -------
    LengthBiasReport

    Raises
    ------
    InputError
        If there are no rows, the rewards are not one per row, or a row lacks a side.

    Notes
    -----
    Pearson's r uses the raw lengths. Spearman's ρ is Pearson's r of the ranks, with tied
    values given the mean of the ranks they span (as ``scipy.stats.spearmanr`` does); it is
    computed with numpy so that the core package needs no scipy. Responses (or pairs) with a
    NaN or infinite reward are left out of the correlations, and count as wrong in the
    accuracies.

    Examples
    --------
    >>> rows = [
    ...     {"chosen": "long answer", "rejected": "short"},
    ...     {"chosen": "terse", "rejected": "rambling on"},
    ... ]
    >>> report = length_bias_report(rows, [2.0, 0.0], [1.0, 1.0])
    >>> report.accuracy, report.accuracy_chosen_shorter, report.longer_wins_accuracy
    (0.5, 0.0, 0.5)
    >>> round(report.reward_length_spearman, 4)
    0.7071
    """
    if len(rows) == 0:
        raise InputError("no pairs to report on", field="rows", expected="at least one row")
    correct = pairwise_correct(chosen_rewards, rejected_rewards)
    if correct.size != len(rows):
        raise InputError(
            f"{correct.size} rewards per side for {len(rows)} rows",
            field="chosen_rewards",
            expected="one reward per row on each side",
        )
    chosen = np.asarray(chosen_rewards, dtype=np.float64)
    rejected = np.asarray(rejected_rewards, dtype=np.float64)
    chosen_length, rejected_length = pair_lengths(rows, unit=unit)
    shorter = chosen_length < rejected_length
    longer = chosen_length > rejected_length
    equal = ~(shorter | longer)

    def ci(mask: npt.NDArray[np.bool_]) -> tuple[float, float] | None:
        if not mask.any():
            return None
        return bootstrap_ci(correct[mask].astype(np.float64), n=bootstrap_resamples, seed=seed)

    rewards = np.concatenate([chosen, rejected])
    lengths = np.concatenate([chosen_length, rejected_length]).astype(np.float64)
    reward_gap = chosen - rejected
    length_gap = (chosen_length - rejected_length).astype(np.float64)
    everything = np.ones(len(rows), dtype=bool)
    all_ci = ci(everything)
    assert all_ci is not None
    return LengthBiasReport(
        n=len(rows),
        unit=unit,
        accuracy=float(correct.mean()),
        accuracy_ci95=all_ci,
        chosen_longer_share=float(longer.mean()),
        n_chosen_shorter=int(shorter.sum()),
        accuracy_chosen_shorter=_mean_or_none(correct, shorter),
        accuracy_chosen_shorter_ci95=ci(shorter),
        n_chosen_longer=int(longer.sum()),
        accuracy_chosen_longer=_mean_or_none(correct, longer),
        n_equal_length=int(equal.sum()),
        accuracy_equal_length=_mean_or_none(correct, equal),
        longer_wins_accuracy=pairwise_accuracy(chosen_length, rejected_length),
        reward_length_pearson=pearson(rewards, lengths),
        reward_length_spearman=spearman(rewards, lengths),
        difference_pearson=pearson(reward_gap, length_gap),
        difference_spearman=spearman(reward_gap, length_gap),
    )


def _mean_or_none(values: npt.NDArray[np.bool_], mask: npt.NDArray[np.bool_]) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def _finite_pairs(
    x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(
            f"shapes {a.shape} and {b.shape} differ", field="y", expected="two equal 1-d arrays"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float | None:
    """Pearson's r over the positions where both values are finite.

    Returns None when fewer than two such positions remain or either side is constant.

    Examples
    --------
    >>> pearson([1, 2, 3], [2, 4, 7])
    0.9933992677987828
    >>> pearson([1, 1, 1], [2, 4, 7]) is None
    True
    """
    a, b = _finite_pairs(x, y)
    if a.size < 2:
        return None
    a = a - a.mean()
    b = b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if scale == 0.0:
        return None
    return float(np.clip((a * b).sum() / scale, -1.0, 1.0))


def average_ranks(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1-based ranks, tied values sharing the mean of the ranks they span.

    Examples
    --------
    >>> average_ranks([10, 30, 20, 30]).tolist()
    [1.0, 3.5, 2.0, 3.5]
    """
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ordered = array[order]
    starts_block = np.r_[True, ordered[1:] != ordered[:-1]]
    block = np.cumsum(starts_block) - 1
    first = np.flatnonzero(starts_block)
    last = np.r_[first[1:], array.size] - 1
    ranks = np.empty(array.size, dtype=np.float64)
    ranks[order] = ((first + last) / 2.0 + 1.0)[block]
    return ranks


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float | None:
    """Spearman's ρ (Pearson's r of average ranks) over positions where both are finite.

    Returns None when it is undefined (see :func:`pearson`).

    Examples
    --------
    >>> spearman([1, 2, 3, 4], [1, 4, 9, 16])
    1.0
    """
    a, b = _finite_pairs(x, y)
    if a.size < 2:
        return None
    return pearson(average_ranks(a), average_ranks(b))


# --------------------------------------------------------------------------------------------
# a length-residualised reward


class LengthResidualiser:
    """Removes the part of a reward that a linear function of log-length explains.

    :meth:`fit` finds ``reward ≈ intercept + slope · log(1 + length)`` by least squares (on
    training responses, chosen and rejected sides together); :meth:`transform` returns
    ``reward − slope · log(1 + length)``. The intercept stays in, so the rewards keep their
    level and scale; only the length trend goes. The logarithm makes the step from 100 to 200
    characters count like the step from 1 000 to 2 000.

    Parameters
    ----------
    unit:
        Unit of the lengths it is fitted on, recorded for whoever applies it later
        (default: ``"chars"``).

    Examples
    --------
    >>> import numpy as np
    >>> lengths = np.array([9, 99, 999])
    >>> rewards = 1.0 + 0.5 * np.log1p(lengths)
    >>> residualiser = LengthResidualiser().fit(rewards, lengths)
    >>> round(residualiser.slope, 6), round(residualiser.intercept, 6)
    (0.5, 1.0)
    >>> residualiser.transform(rewards, lengths).round(6).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, *, unit: LengthUnit = "chars") -> None:
        if unit not in ("chars", "words"):
            raise InputError(f"unknown unit {unit!r}", field="unit", expected="'chars' or 'words'")
        self.unit: LengthUnit = unit
        self._coefficients: tuple[float, float] | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_dict`) has set the coefficients."""
        return self._coefficients is not None

    @property
    def intercept(self) -> float:
        """The fitted ``a`` of ``reward ≈ a + b · log(1 + length)``."""
        return self._checked()[0]

    @property
    def slope(self) -> float:
        """The fitted ``b``: reward gained per unit of log(1 + length)."""
        return self._checked()[1]

    def fit(self, rewards: npt.ArrayLike, lengths: npt.ArrayLike) -> LengthResidualiser:
        """Fit the intercept and slope by least squares; returns ``self``.

        Raises
        ------
        InputError
            If the inputs differ in size, hold fewer than two responses, a NaN or negative
            length, a non-finite reward, or only one distinct length (no slope to fit).
        """
        reward, log_length = self._checked_inputs(rewards, lengths)
        if reward.size < 2:
            raise InputError(
                f"{reward.size} responses", field="rewards", expected="at least two to fit"
            )
        if not np.isfinite(reward).all():
            raise InputError("contains NaN or infinity", field="rewards", expected="finite")
        centred = log_length - log_length.mean()
        spread = float((centred * centred).sum())
        if spread == 0.0:
            raise InputError(
                "all responses have the same length", field="lengths", expected="varied lengths"
            )
        slope = float((centred * (reward - reward.mean())).sum() / spread)
        intercept = float(reward.mean() - slope * log_length.mean())
        self._coefficients = (intercept, slope)
        return self

    def transform(self, rewards: npt.ArrayLike, lengths: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``rewards − slope · log(1 + lengths)``.

        Raises
        ------
        InputError
            If not fitted, or the inputs differ in size or hold a negative length.
        """
        slope = self.slope
        reward, log_length = self._checked_inputs(rewards, lengths)
        return reward - slope * log_length

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready coefficients, to save next to a model."""
        intercept, slope = self._checked()
        return {
            "kind": "length_residualiser",
            "feature": "log1p_length",
            "unit": self.unit,
            "intercept": intercept,
            "slope": slope,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LengthResidualiser:
        """Rebuild from :meth:`to_dict`'s output.

        Examples
        --------
        >>> saved = {"unit": "words", "intercept": 0.1, "slope": 0.25}
        >>> LengthResidualiser.from_dict(saved).slope
        0.25
        """
        try:
            intercept = float(values["intercept"])
            slope = float(values["slope"])
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"unreadable residualiser ({error!r})",
                field="slope",
                expected='{"intercept": float, "slope": float, "unit": "chars" | "words"}',
            ) from None
        residualiser = cls(unit=values.get("unit", "chars"))
        residualiser._coefficients = (intercept, slope)
        return residualiser

    def _checked(self) -> tuple[float, float]:
        if self._coefficients is None:
            raise InputError(
                "the residualiser is not fitted", field="slope", expected="fit() called first"
            )
        return self._coefficients

    @staticmethod
    def _checked_inputs(
        rewards: npt.ArrayLike, lengths: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        reward = np.asarray(rewards, dtype=np.float64).ravel()
        length = np.asarray(lengths, dtype=np.float64).ravel()
        if reward.shape != length.shape:
            raise InputError(
                f"{reward.size} rewards but {length.size} lengths",
                field="lengths",
                expected="one length per reward",
            )
        if np.isnan(length).any() or (length < 0).any():
            raise InputError("negative or NaN length", field="lengths", expected="lengths >= 0")
        return reward, np.log1p(length)
