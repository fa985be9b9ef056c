"""The preference row, the dataset container and the deterministic grouped split.

Every builder in :mod:`tacitly.data` returns a :class:`PreferenceDataset` whose rows follow
TRL's conversational preference format, so that ``DPOTrainer`` and ``RewardTrainer`` take them
as they are::

    {"prompt":   [{"role": "user", "content": "..."}, ...],   # the conversation so far
     "chosen":   [{"role": "assistant", "content": "..."}],   # the preferred answer turn(s)
     "rejected": [{"role": "assistant", "content": "..."}],
     "margin": float | None,   # how much better chosen is, when the source says (else None)
     "weight": float | None,   # confidence in the label, when the source says (else None)
     "meta": {"source": ..., "id": ..., "group": ..., ...}}

``meta`` always holds ``source`` (the dataset name), ``id`` (a stable id of the pair inside the
source) and ``group`` (the key the split is grouped by); builders add their own fields.

Splits
------
:func:`grouped_split` assigns whole groups (a prompt, a worker, a conversation tree) to one
split, so that a group never crosses splits. Groups are ordered by a keyed BLAKE2b hash of
``(seed, group)``; the hash does not depend on numpy, the platform or the Python hash seed, so
a split is the same on every machine, and another ``seed`` gives another permutation. Groups
are placed in that order, each in the split where the middle of its rows falls, so that row
shares come close to the fractions.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import polars as pl

from tacitly.errors import InputError

__all__ = [
    "SPLITS",
    "DroppedRow",
    "Message",
    "PreferenceDataset",
    "PreferenceRow",
    "grouped_split",
    "make_row",
]

LOGGER = logging.getLogger("tacitly.data")

SPLITS: tuple[str, ...] = ("train", "validation", "test")
ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})


class Message(TypedDict):
    """One turn of a conversation, as TRL and chat templates expect it."""

    role: str
    content: str


class PreferenceRow(TypedDict):
    """One preference pair in TRL's conversational format (see the module docstring)."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    margin: float | None
    weight: float | None
    meta: dict[str, Any]


class DroppedRow(NamedTuple):
    """A source row that did not become a pair, and why (nothing is dropped silently)."""

    id: str
    reason: str


def make_row(
    *,
    prompt: Sequence[Message],
    chosen: Sequence[Message],
    rejected: Sequence[Message],
    meta: Mapping[str, Any],
    margin: float | None = None,
    weight: float | None = None,
) -> PreferenceRow:
    """Build a :class:`PreferenceRow` (copies the turn lists and meta).

    Examples
    --------
    >>> row = make_row(
    ...     prompt=[{"role": "user", "content": "Hi?"}],
    ...     chosen=[{"role": "assistant", "content": "Hello!"}],
    ...     rejected=[{"role": "assistant", "content": "Go away."}],
    ...     meta={"source": "doc", "id": "1", "group": "Hi?"},
    ... )
    >>> row["chosen"][0]["content"], row["margin"]
    ('Hello!', None)
    """
    return PreferenceRow(
        prompt=[Message(role=m["role"], content=m["content"]) for m in prompt],
        chosen=[Message(role=m["role"], content=m["content"]) for m in chosen],
        rejected=[Message(role=m["role"], content=m["content"]) for m in rejected],
        margin=margin,
        weight=weight,
        meta=dict(meta),
    )


def grouped_split(
    groups: Sequence[str],
    *,
    fractions: Mapping[str, float],
    seed: int = 42,
) -> list[str]:
    """Assign each row to a split so that rows sharing a group land in the same split.

    Parameters
    ----------
    groups:
        The group key of each row (a prompt text, a worker id, a conversation tree id).
    fractions:
        Split name → share of the rows it receives, in the order the splits are filled;
        shares must be non-negative and sum to 1. Whole groups are placed in hash order, each
        where the middle of its rows falls, so shares are met as closely as group sizes allow.
    seed:
        Key of the hash that orders the groups (default: 42).

    Returns
    -------
    list[str]
        The split name of every row, in the order of ``groups``.

    Examples
    --------
    >>> splits = grouped_split(["a", "b", "a", "c"], fractions={"train": 0.5, "test": 0.5})
    >>> splits[0] == splits[2], sorted(set(splits))
    (True, ['test', 'train'])
    """
    total = sum(fractions.values())
    if any(share < 0 for share in fractions.values()) or abs(total - 1.0) > 1e-9:
        raise InputError(
            f"split fractions {dict(fractions)} do not sum to 1",
            field="fractions",
            expected="non-negative shares summing to 1",
        )
    sizes = Counter(groups)
    ordered = sorted(sizes, key=lambda group: _group_order(group, seed=seed))
    bounds = list(accumulate(fractions.values()))
    names = list(fractions)
    assignment: dict[str, str] = {}
    before = 0
    for group in ordered:
        # A group goes where the middle of its run of rows falls, so that row shares come
        # close to the fractions even when groups differ in size.
        middle = (before + sizes[group] / 2) / len(groups)
        assignment[group] = names[min(bisect_right(bounds, middle), len(names) - 1)]
        before += sizes[group]
    return [assignment[group] for group in groups]


def _group_order(group: str, *, seed: int) -> tuple[bytes, str]:
    key = str(seed).encode()
    digest = hashlib.blake2b(group.encode(), digest_size=8, key=key[:64]).digest()
    # The group text breaks the (astronomically rare) hash tie so that the order is total.
    return digest, group


@dataclass(frozen=True)
class PreferenceDataset:
    """Preference pairs of one source, split into train/validation/test.

    Parameters
    ----------
    name:
        The source's name (``"autoj"``, ``"hh-rlhf"``, a file name, ...).
    splits:
        Split name → rows. Builders always give ``train``, ``validation`` and ``test`` (a
        split may be empty); :meth:`select` keeps one.
    dropped:
        Source rows that did not become pairs, with the reason (default: none).
    description:
        One line on where the data come from and how it was split (default: "").

    Examples
    --------
    >>> from tacitly.data import load_preferences
    >>> demo = load_preferences("demo")
    >>> len(demo) == sum(len(rows) for rows in demo.splits.values())
    True
    >>> demo["train"][0]["prompt"][-1]["role"]
    'user'
    """

    name: str
    splits: Mapping[str, list[PreferenceRow]]
    dropped: tuple[DroppedRow, ...] = ()
    description: str = ""

    def __getitem__(self, split: str) -> list[PreferenceRow]:
        if split not in self.splits:
            raise InputError(
                f"no split {split!r} in {self.name}",
                field="split",
                expected=" or ".join(repr(name) for name in self.splits),
            )
        return self.splits[split]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.splits.values())

    def __iter__(self) -> Iterator[PreferenceRow]:
        for rows in self.splits.values():
            yield from rows

    @property
    def rows(self) -> list[PreferenceRow]:
        """All rows, split after split (train, validation, test)."""
        return list(self)

    def drop_summary(self) -> dict[str, int]:
        """Reason → number of source rows dropped for it, most frequent first."""
        return dict(Counter(drop.reason for drop in self.dropped).most_common())

    def select(self, split: str) -> PreferenceDataset:
        """A dataset holding only ``split`` (the drop record is kept whole)."""
        return PreferenceDataset(
            name=self.name,
            splits={split: self[split]},
            dropped=self.dropped,
            description=self.description,
        )

    def to_jsonl(self, folder: str | PathLike[str]) -> dict[str, Path]:
        """Write ``<folder>/<split>.jsonl`` per split; :func:`load_preferences` reads it back.

        Returns
        -------
        dict[str, Path]
            Split name → file written.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for split, rows in self.splits.items():
            path = target / f"{split}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written[split] = path
        return written

    def to_polars(self) -> pl.DataFrame:
        """All rows as one polars DataFrame with an added ``split`` column."""
        frames = [
            pl.DataFrame(rows, infer_schema_length=None).with_columns(split=pl.lit(split))
            for split, rows in self.splits.items()
            if rows
        ]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def to_hf(self, *, keep_meta: bool = True) -> Any:
        """The splits as a Hugging Face ``datasets.DatasetDict`` (needs ``datasets``).

        ``margin`` and ``weight`` are left out when no row has a value, because TRL's reward
        trainer uses a ``margin`` column whenever one exists. Empty splits are kept, with the
        features of the first non-empty one.

        Parameters
        ----------
        keep_meta:
            Keep the ``meta`` column (default: True).
        """
        try:
            # Imported by name: `datasets` is optional and ships no type information.
            datasets = importlib.import_module("datasets")
        except ImportError as error:
            raise InputError(
                "to_hf() needs the Hugging Face `datasets` package",
                expected="pip install datasets",
            ) from error
        dropped = [name for name in ("margin", "weight") if all(r[name] is None for r in self)]
        if not keep_meta:
            dropped.append("meta")
        built = {
            split: datasets.Dataset.from_list(
                [{k: v for k, v in row.items() if k not in dropped} for row in rows]
            )
            for split, rows in self.splits.items()
        }
        features = next((d.features for d in built.values() if len(d) > 0), None)
        for split, rows in self.splits.items():
            if not rows and features is not None:
                built[split] = datasets.Dataset.from_dict(
                    {name: [] for name in features}, features=features
                )
        return datasets.DatasetDict(built)


def finish(
    *,
    name: str,
    rows: Sequence[PreferenceRow],
    split_of: Sequence[str],
    dropped: Sequence[DroppedRow],
    description: str,
    split: str | None = None,
) -> PreferenceDataset:
    """Gather rows into their splits (train, validation, test order), log drops, select."""
    by_split: dict[str, list[PreferenceRow]] = {name_: [] for name_ in SPLITS}
    for row, split_name in zip(rows, split_of, strict=True):
        by_split.setdefault(split_name, []).append(row)
    dataset = PreferenceDataset(
        name=name, splits=by_split, dropped=tuple(dropped), description=description
    )
    if dropped:
        LOGGER.info("%s: kept %d pairs, dropped %s", name, len(rows), dataset.drop_summary())
    return dataset if split is None else dataset.select(split)


def pair_problem(
    prompt: Sequence[Message], chosen: Sequence[Message], rejected: Sequence[Message]
) -> str | None:
    """Why a candidate pair is unusable (the drop reason), or None when it is fine.

    Examples
    --------
    >>> user = [{"role": "user", "content": "Q"}]
    >>> pair_problem(user, [{"role": "assistant", "content": " "}],
    ...              [{"role": "assistant", "content": "B"}])
    'empty response'
    """
    if not prompt or any(not turn["content"].strip() for turn in prompt):
        return "empty prompt turn"
    if prompt[-1]["role"] != "user":
        return "prompt does not end with a user turn"
    if not chosen or not rejected:
        return "missing response"
    if any(turn["role"] != "assistant" for turn in (*chosen, *rejected)):
        return "conversations differ before the final assistant turn"
    if any(not turn["content"].strip() for turn in (*chosen, *rejected)):
        return "empty response"
    if [t["content"].strip() for t in chosen] == [t["content"].strip() for t in rejected]:
        return "identical responses"
    return None
