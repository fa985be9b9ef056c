"""Pairwise accuracy of a reward, per subset and overall, with bootstrap intervals.

Every reward's ``eval`` command reports this: RewardBench's rule (a pair is right only when the
chosen response's reward is strictly greater, so a tie or a NaN is wrong), accuracy per subset
(an Auto-J scenario, an HH-RLHF split, ...), the overall accuracy over all pairs (the subsets'
accuracies weighted by their sizes) and, labelled apart, the unweighted mean of the subsets'
accuracies (each subset counts once, as in RewardBench's section scores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tacitly.errors import InputError
from tacitly.evaluate.metrics import bootstrap_ci, pairwise_correct

__all__ = ["DEFAULT_SUBSET", "SUBSET_KEYS", "accuracy_report", "row_subsets"]

#: Subset of a pair that names none.
DEFAULT_SUBSET = "all"
#: Where :func:`row_subsets` looks for a pair's subset, in this order (in ``meta``, then at
#: the top level of the row).
SUBSET_KEYS: tuple[str, ...] = ("scenario", "subset", "source")


def row_subsets(rows: Sequence[Mapping[str, Any]], *, by: str | None = None) -> list[str]:
    """The subset of each preference row.

    A row's subset is ``meta[by]`` (or ``row[by]``) when ``by`` is given, else the first of
    ``scenario``, ``subset``, ``source`` found in ``meta`` or at the top level; a row with none
    of them (or only empty values) is in ``"all"``.

    Parameters
    ----------
    rows:
        Preference rows (``meta`` optional).
    by:
        The one field naming the subsets (default: None, the keys above).

    Examples
    --------
    >>> row_subsets([{"meta": {"source": "autoj", "scenario": "code"}}, {"subset": "chat"}, {}])
    ['code', 'chat', 'all']
    """
    keys = (by,) if by is not None else SUBSET_KEYS
    names = []
    for row in rows:
        meta = row.get("meta")
        places = (meta if isinstance(meta, Mapping) else {}, row)
        found = next(
            (
                str(place[key])
                for key in keys
                for place in places
                if place.get(key) is not None and str(place[key]) != ""
            ),
            DEFAULT_SUBSET,
        )
        names.append(found)
    return names


def accuracy_report(
    chosen_rewards: npt.ArrayLike,
    rejected_rewards: npt.ArrayLike,
    *,
    subsets: Sequence[str | None] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy (a tie or a NaN is wrong) per subset and overall, with bootstrap 95% intervals.

    Parameters
    ----------
    chosen_rewards, rejected_rewards:
        Reward of each pair's chosen and rejected response.
    subsets:
        Subset name of each pair, e.g. from :func:`row_subsets`; None (or a None entry) puts
        pairs in ``"all"`` (default: None).
    n_boot:
        Bootstrap resamples of every interval (default: 1000).
    seed:
        Seed of the bootstrap (default: 0).

    Returns
    -------
    dict
        JSON-ready, keys in this order:

        - ``accuracy``: over all pairs (= subsets weighted by size); ``n``: number of pairs;
        - ``subsets``: subset → accuracy, sorted by name;
        - ``ci95``: ``[low, high]``, percentile bootstrap over pairs;
        - ``subset_n``: subset → number of pairs; ``subset_ci95``: subset → ``[low, high]``
          (bootstrap within the subset);
        - ``subset_mean_accuracy``: unweighted mean of the subsets' accuracies, and
          ``subset_mean_ci95``, its stratified bootstrap (pairs resampled within each subset);
        - ``ties``: pairs with equal rewards; ``nan``: pairs with a NaN reward (both wrong).

    Raises
    ------
    InputError
        If there are no pairs, the sides (or ``subsets``) differ in length, or ``n_boot < 1``.

    Examples
    --------
    >>> report = accuracy_report([1.0, 0.0, 2.0], [0.0, 0.0, 1.0], subsets=["a", "a", "b"])
    >>> report["accuracy"], report["n"], report["subsets"], report["subset_n"]
    (0.6666666666666666, 3, {'a': 0.5, 'b': 1.0}, {'a': 2, 'b': 1})
    >>> report["subset_mean_accuracy"], report["ties"]
    (0.75, 1)
    """
    correct = pairwise_correct(chosen_rewards, rejected_rewards)
    if correct.size == 0:
        raise InputError("no pairs to evaluate", field="chosen_rewards", expected="at least one")
    if n_boot < 1:
        raise InputError(f"n_boot is {n_boot}", field="n_boot", expected="at least 1 resample")
    names = _subset_names(subsets, size=correct.size)
    chosen = np.asarray(chosen_rewards, dtype=np.float64)
    rejected = np.asarray(rejected_rewards, dtype=np.float64)
    hits = correct.astype(np.float64)
    labels, index = np.unique(names, return_inverse=True)
    members = [hits[index == k] for k in range(labels.size)]
    accuracies = [float(values.mean()) for values in members]
    subset_mean = float(np.mean(accuracies))
    return {
        "accuracy": float(hits.mean()),
        "n": int(hits.size),
        "subsets": dict(zip(labels.tolist(), accuracies, strict=True)),
        "ci95": list(bootstrap_ci(hits, n=n_boot, seed=seed)),
        "subset_n": {
            str(name): int(values.size) for name, values in zip(labels, members, strict=True)
        },
        "subset_ci95": {
            str(name): list(bootstrap_ci(values, n=n_boot, seed=seed))
            for name, values in zip(labels, members, strict=True)
        },
        "subset_mean_accuracy": subset_mean,
        "subset_mean_ci95": _stratified_mean_ci(members, n_boot=n_boot, seed=seed),
        "ties": int(np.sum(chosen == rejected)),
        "nan": int(np.sum(np.isnan(chosen) | np.isnan(rejected))),
    }


def _subset_names(subsets: Sequence[str | None] | None, *, size: int) -> npt.NDArray[np.str_]:
    if subsets is None:
        return np.full(size, DEFAULT_SUBSET)
    if len(subsets) != size:
        raise InputError(
            f"{len(subsets)} subset names for {size} pairs",
            field="subsets",
            expected="one subset name per pair",
        )
    return np.array(
        [DEFAULT_SUBSET if name is None or str(name) == "" else str(name) for name in subsets]
    )


def _stratified_mean_ci(
    members: Sequence[npt.NDArray[np.float64]], *, n_boot: int, seed: int
) -> list[float]:
    """Percentile interval of the unweighted mean of group means, resampling within groups."""
    rng = np.random.default_rng(seed)
    means = np.zeros(n_boot)
    for values in members:
        # chunks keep the index matrix small for a large subset
        chunk = max(1, 10_000_000 // values.size)
        means += np.concatenate(
            [
                values[
                    rng.integers(0, values.size, size=(min(chunk, n_boot - i), values.size))
                ].mean(axis=1)
                for i in range(0, n_boot, chunk)
            ]
        )
    means /= len(members)
    low, high = np.quantile(means, [0.025, 0.975])
    return [float(low), float(high)]
