"""Builders for preference sets published on the Hugging Face hub: HelpSteer2 and OASST1.

Where the data come from, in this order:

1. ``source``: a folder holding the hub repository's files (``train.jsonl.gz``,
   ``data/train-*.parquet``, ...), a folder written by ``DatasetDict.save_to_disk``, or a
   mapping ``{"train": ..., "validation": ...}`` whose values are polars DataFrames, lists of
   row dicts, ``datasets.Dataset`` objects or file paths (.parquet, .jsonl[.gz], .json, .csv).
2. The Hugging Face cache (a snapshot of the dataset repository), read without the network.
3. ``datasets.load_dataset(hub_id)``, only when the machine is not marked offline
   (``HF_HUB_OFFLINE``) and ``huggingface.co`` answers within 2 s, so that an offline
   machine fails at once with a message saying how to make the data available.

Splits: the hub's ``train`` split is cut 85/15 into train/validation with
:func:`~tacitly.data.schema.grouped_split` (HelpSteer2 grouped by prompt, OASST1 by
conversation tree), and the hub's ``validation`` split becomes ``test``.
"""

from __future__ import annotations

import gzip
import importlib
import io
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import polars as pl

from tacitly.backbones import hub_offline_reason
from tacitly.data.schema import (
    DroppedRow,
    Message,
    PreferenceDataset,
    PreferenceRow,
    finish,
    grouped_split,
    make_row,
    pair_problem,
)
from tacitly.data.turns import parse_helpsteer_prompt
from tacitly.errors import InputError

__all__ = ["HUB_FRACTIONS", "HubSource", "load_helpsteer2", "load_oasst1"]

HubSource = str | PathLike[str] | Mapping[str, Any] | None

HUB_FRACTIONS: dict[str, float] = {"train": 0.85, "validation": 0.15}
HELPSTEER2_ID = "nvidia/HelpSteer2"
OASST1_ID = "OpenAssistant/oasst1"
HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
HELPSTEER_COLUMNS = ("prompt", "response", *HELPSTEER_ATTRIBUTES)
OASST_COLUMNS = (
    "message_id",
    "parent_id",
    "text",
    "role",
    "lang",
    "deleted",
    "rank",
    "message_tree_id",
)
_HUB_SPLITS = ("train", "validation")
_EXTENSIONS = (".parquet", ".jsonl", ".jsonl.gz", ".ndjson", ".json", ".csv")


def load_helpsteer2(
    *,
    source: HubSource = None,
    seed: int = 42,
    split: str | None = None,
    offline: bool | None = None,
) -> PreferenceDataset:
    """NVIDIA HelpSteer2 as pairs: per prompt, the most helpful response over the next one.

    Responses to one prompt are ordered by ``helpfulness`` (data order among equals);
    chosen is the first, rejected the second. Prompts with one response ("single response")
    or whose top two share the helpfulness score ("tie") are dropped. ``margin`` is the
    helpfulness difference; ``meta`` keeps ``hub_split``, ``row`` (0-based in that split) and
    the five attribute scores of both sides (``chosen_scores``, ``rejected_scores``).
    Multi-turn prompts (``<extra_id_1>`` markers) become a conversation.

    Parameters
    ----------
    source:
        Local copy (see the module docstring) (default: None, the cache or the hub).
    seed:
        Split seed; hub train → 85/15 train/validation grouped by prompt, hub validation →
        test (default: 42).
    split:
        Keep only this split (default: None, all three).
    offline:
        True never contacts the hub; None decides from ``HF_HUB_OFFLINE`` and a 2 s
        reachability check (default: None).

    Examples
    --------
    >>> pair = {"prompt": ["Hi?", "Hi?"], "response": ["Hey.", "Hello! How can I help?"],
    ...         "helpfulness": [2, 4], "correctness": [3, 4], "coherence": [4, 4],
    ...         "complexity": [1, 1], "verbosity": [1, 2]}
    >>> row = load_helpsteer2(source={"train": pair}).rows[0]
    >>> row["chosen"][0]["content"], row["margin"]
    ('Hello! How can I help?', 2.0)
    """
    frames = _hub_frames(HELPSTEER2_ID, source, columns=HELPSTEER_COLUMNS, offline=offline)
    rows, split_of, dropped = _pairs_of_every_split(frames, _helpsteer_pairs, seed=seed)
    return finish(
        name="helpsteer2",
        rows=rows,
        split_of=split_of,
        dropped=dropped,
        description="nvidia/HelpSteer2 best vs second by helpfulness; hub train → 85/15 "
        "train/validation grouped by prompt, hub validation → test",
        split=split,
    )


def load_oasst1(
    *,
    source: HubSource = None,
    seed: int = 42,
    split: str | None = None,
    offline: bool | None = None,
) -> PreferenceDataset:
    """OpenAssistant OASST1 as pairs: per prompter message, best- over worst-ranked reply.

    Only English (``lang == "en"``), not deleted messages are used. For each prompter
    message, the assistant replies with a ``rank`` compete; rank 0 is the best in OASST1, so
    chosen is the lowest rank and rejected the highest. Dropped, with the reason: prompter
    messages with fewer than two ranked replies, with all replies ranked equal, or whose
    earlier turns include a deleted or non-English message. The prompt is the conversation
    from the tree's root to the prompter message (prompter → user). ``meta`` keeps
    ``hub_split``, ``message_tree_id``, ``prompt_message_id``, ``chosen_message_id``,
    ``rejected_message_id``, ``chosen_rank``, ``rejected_rank`` and ``n_ranked``.

    Parameters
    ----------
    source:
        Local copy (see the module docstring) (default: None, the cache or the hub).
    seed:
        Split seed; hub train → 85/15 train/validation grouped by conversation tree, hub
        validation → test (default: 42).
    split:
        Keep only this split (default: None, all three).
    offline:
        True never contacts the hub; None decides from ``HF_HUB_OFFLINE`` and a 2 s
        reachability check (default: None).

    Examples
    --------
    >>> messages = {
    ...     "message_id": ["q", "a", "b"], "parent_id": [None, "q", "q"],
    ...     "text": ["Hi?", "Hello!", "What."], "role": ["prompter", "assistant", "assistant"],
    ...     "lang": ["en"] * 3, "deleted": [False] * 3, "rank": [None, 0, 1],
    ...     "message_tree_id": ["q"] * 3}
    >>> row = load_oasst1(source={"train": messages}).rows[0]
    >>> row["chosen"][0]["content"], row["rejected"][0]["content"]
    ('Hello!', 'What.')
    """
    frames = _hub_frames(OASST1_ID, source, columns=OASST_COLUMNS, offline=offline)
    rows, split_of, dropped = _pairs_of_every_split(frames, _oasst_pairs, seed=seed)
    return finish(
        name="oasst1",
        rows=rows,
        split_of=split_of,
        dropped=dropped,
        description="OpenAssistant/oasst1 English best vs worst reply; hub train → 85/15 "
        "train/validation grouped by tree, hub validation → test",
        split=split,
    )


_PairBuilder = Callable[..., tuple[list[PreferenceRow], list[str], list[DroppedRow]]]


def _pairs_of_every_split(
    frames: Mapping[str, pl.DataFrame], build: _PairBuilder, *, seed: int
) -> tuple[list[PreferenceRow], list[str], list[DroppedRow]]:
    """Pairs of each hub split, with our split name for each pair, and the dropped rows."""
    rows: list[PreferenceRow] = []
    split_of: list[str] = []
    dropped: list[DroppedRow] = []
    for hub_split, frame in frames.items():
        built, groups, lost = build(frame, hub_split=hub_split)
        rows += built
        dropped += lost
        split_of += _hub_split_names(hub_split, groups, seed=seed)
    return rows, split_of, dropped


def _hub_split_names(hub_split: str, groups: Sequence[str], *, seed: int) -> list[str]:
    if hub_split == "validation":
        return ["test"] * len(groups)
    return grouped_split(groups, fractions=HUB_FRACTIONS, seed=seed)


# --- HelpSteer2 -------------------------------------------------------------------------


def _helpsteer_pairs(
    frame: pl.DataFrame, *, hub_split: str
) -> tuple[list[PreferenceRow], list[str], list[DroppedRow]]:
    indexed = frame.with_row_index("row")
    _require_values(indexed, HELPSTEER_COLUMNS, source=f"{HELPSTEER2_ID} {hub_split}")
    ranked = indexed.with_columns(
        place=pl.col("helpfulness").rank("ordinal", descending=True).over("prompt"),
        responses=pl.len().over("prompt"),
    )
    dropped = [
        DroppedRow(f"{hub_split}:{row}", "single response")
        for row in ranked.filter(pl.col("responses") == 1)["row"]
    ]
    first = ranked.filter(pl.col("place") == 1)
    second = ranked.filter(pl.col("place") == 2).drop("place", "responses")
    pairs = first.join(second, on="prompt", suffix="_rejected", maintain_order="left")
    rows: list[PreferenceRow] = []
    groups: list[str] = []
    for record in pairs.iter_rows(named=True):
        identifier = f"{hub_split}:{record['row']}"
        if record["helpfulness"] == record["helpfulness_rejected"]:
            dropped.append(DroppedRow(identifier, "tie"))
            continue
        prompt = parse_helpsteer_prompt(record["prompt"])
        chosen = [Message(role="assistant", content=record["response"].strip())]
        rejected = [Message(role="assistant", content=record["response_rejected"].strip())]
        problem = pair_problem(prompt, chosen, rejected)
        if problem is not None:
            dropped.append(DroppedRow(identifier, problem))
            continue
        meta = {
            "source": "helpsteer2",
            "id": identifier,
            "group": record["prompt"],
            "hub_split": hub_split,
            "row": record["row"],
            "chosen_scores": {name: record[name] for name in HELPSTEER_ATTRIBUTES},
            "rejected_scores": {name: record[f"{name}_rejected"] for name in HELPSTEER_ATTRIBUTES},
        }
        margin = float(record["helpfulness"] - record["helpfulness_rejected"])
        rows.append(
            make_row(prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, meta=meta)
        )
        groups.append(record["prompt"])
    return rows, groups, sorted(dropped, key=lambda drop: int(drop.id.split(":")[1]))


# --- OASST1 -----------------------------------------------------------------------------

_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def _oasst_pairs(
    frame: pl.DataFrame, *, hub_split: str
) -> tuple[list[PreferenceRow], list[str], list[DroppedRow]]:
    source = f"{OASST1_ID} {hub_split}"
    indexed = frame.with_row_index("row")
    _require_values(indexed, ("message_id", "role"), source=source)
    kept = indexed.filter((pl.col("lang") == "en") & pl.col("deleted").fill_null(False).not_())
    _require_values(kept, ("text", "message_tree_id"), source=source)
    replies = (
        kept.filter((pl.col("role") == "assistant") & pl.col("rank").is_not_null())
        .sort("parent_id", "rank", "row")
        .group_by("parent_id", maintain_order=True)
        .agg(
            n_ranked=pl.len(),
            best=pl.col("message_id").first(),
            best_rank=pl.col("rank").first(),
            worst=pl.col("message_id").last(),
            worst_rank=pl.col("rank").last(),
        )
    )
    prompters = kept.filter(pl.col("role") == "prompter").join(
        replies, left_on="message_id", right_on="parent_id", how="left", maintain_order="left"
    )
    by_id: dict[str, tuple[str | None, str, str]] = {
        message_id: (parent, role, text)
        for message_id, parent, role, text in kept.select(
            "message_id", "parent_id", "role", "text"
        ).iter_rows()
    }
    rows: list[PreferenceRow] = []
    groups: list[str] = []
    dropped: list[DroppedRow] = []
    for record in prompters.iter_rows(named=True):
        built = _oasst_pair(record, by_id, hub_split=hub_split)
        if isinstance(built, str):
            dropped.append(DroppedRow(record["message_id"], built))
        else:
            rows.append(built)
            groups.append(record["message_tree_id"])
    return rows, groups, dropped


def _oasst_pair(
    record: Mapping[str, Any],
    by_id: Mapping[str, tuple[str | None, str, str]],
    *,
    hub_split: str,
) -> PreferenceRow | str:
    """The pair of one prompter message, or the reason it has none."""
    problem = _oasst_problem(record)
    if problem is not None:
        return problem
    prompt = _oasst_conversation(record["message_id"], by_id)
    if prompt is None:
        return "an earlier turn is deleted or not English"
    chosen = [Message(role="assistant", content=by_id[record["best"]][2].strip())]
    rejected = [Message(role="assistant", content=by_id[record["worst"]][2].strip())]
    problem = pair_problem(prompt, chosen, rejected)
    if problem is not None:
        return problem
    meta = {
        "source": "oasst1",
        "id": record["message_id"],
        "group": record["message_tree_id"],
        "hub_split": hub_split,
        "message_tree_id": record["message_tree_id"],
        "prompt_message_id": record["message_id"],
        "chosen_message_id": record["best"],
        "rejected_message_id": record["worst"],
        "chosen_rank": int(record["best_rank"]),
        "rejected_rank": int(record["worst_rank"]),
        "n_ranked": int(record["n_ranked"]),
    }
    return make_row(prompt=prompt, chosen=chosen, rejected=rejected, meta=meta)


def _oasst_problem(record: Mapping[str, Any]) -> str | None:
    if record["n_ranked"] is None or record["n_ranked"] < 2:
        return "fewer than two ranked replies"
    if record["best_rank"] == record["worst_rank"]:
        return "equal ranks"
    return None


def _oasst_conversation(
    message_id: str, by_id: Mapping[str, tuple[str | None, str, str]]
) -> list[Message] | None:
    """Root-to-message turns, or None when a message on the way is missing (filtered out)."""
    turns: list[Message] = []
    current: str | None = message_id
    while current is not None:
        if current not in by_id:
            return None
        parent, role, text = by_id[current]
        turns.append(Message(role=_OASST_ROLES.get(role, role), content=text.strip()))
        current = parent
    return turns[::-1]


# --- where the hub data come from -------------------------------------------------------


def _hub_frames(
    hub_id: str, source: HubSource, *, columns: Sequence[str], offline: bool | None
) -> dict[str, pl.DataFrame]:
    """Hub split name → frame with ``columns``, from the source, the cache or the hub."""
    if isinstance(source, Mapping):
        frames = _frames_from_mapping(source, name=hub_id)
    elif source is not None:
        frames = _frames_from_folder(Path(source), name=hub_id)
    else:
        frames = _frames_from_cache_or_hub(hub_id, offline=offline)
    return {
        split: _with_columns(frame, columns, source=f"{hub_id} {split}")
        for split, frame in frames.items()
    }


def _frames_from_mapping(source: Mapping[str, Any], *, name: str) -> dict[str, pl.DataFrame]:
    unknown = sorted(set(source) - set(_HUB_SPLITS))
    if unknown or not source:
        raise InputError(
            f"split names {unknown or '(none)'} in the {name} source",
            source=name,
            expected='a mapping with "train" and/or "validation"',
        )
    return {
        split: _as_frame(source[split], name=f"{name} {split}")
        for split in _HUB_SPLITS
        if split in source
    }


def _as_frame(value: Any, *, name: str) -> pl.DataFrame:
    if isinstance(value, pl.DataFrame):
        return value
    if isinstance(value, str | PathLike):
        return _read_table(Path(value))
    if hasattr(value, "to_polars"):  # datasets.Dataset
        frame = value.to_polars()
        if isinstance(frame, pl.DataFrame):
            return frame
    if isinstance(value, Mapping | Sequence):
        try:
            return pl.DataFrame(value, infer_schema_length=None)
        except (TypeError, ValueError, pl.exceptions.PolarsError) as error:
            raise InputError(f"cannot read as a table: {error}", source=name) from None
    raise InputError(
        f"{type(value).__name__} is not a table",
        source=name,
        expected="a polars DataFrame, a list of row dicts, a datasets.Dataset or a file path",
    )


def _read_table(file: Path) -> pl.DataFrame:
    if not file.is_file():
        raise InputError("file not found", source=file)
    name = file.name.lower()
    try:
        if name.endswith(".parquet"):
            return pl.read_parquet(file)
        if name.endswith(".gz"):
            with gzip.open(file, "rb") as handle:
                return pl.read_ndjson(io.BytesIO(handle.read()), infer_schema_length=None)
        if name.endswith((".jsonl", ".ndjson")):
            return pl.read_ndjson(file, infer_schema_length=None)
        if name.endswith(".json"):
            return pl.read_json(file, infer_schema_length=None)
        if name.endswith(".csv"):
            return pl.read_csv(file, infer_schema_length=None)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise InputError(f"cannot read: {error}", source=file) from None
    raise InputError("unknown file type", source=file, expected=", ".join(_EXTENSIONS))


def _split_files(folder: Path, split: str) -> list[Path]:
    found: list[Path] = []
    for base in (folder, folder / "data"):
        for pattern in (f"{split}.*", f"{split}-*"):
            found += [p for p in base.glob(pattern) if p.name.lower().endswith(_EXTENSIONS)]
    return sorted(set(found))


def _frames_from_folder(folder: Path, *, name: str) -> dict[str, pl.DataFrame]:
    if not folder.is_dir():
        raise InputError(
            "not a folder",
            source=folder,
            expected=f"a local copy of {name}: its repository files or a save_to_disk folder",
        )
    frames = {
        split: pl.concat([_read_table(file) for file in files], how="diagonal_relaxed")
        for split in _HUB_SPLITS
        if (files := _split_files(folder, split))
    }
    if frames:
        return frames
    if (folder / "dataset_dict.json").is_file():
        datasets = _import_datasets(name)
        return _frames_from_mapping(datasets.load_from_disk(str(folder)), name=name)
    raise InputError(
        "no train or validation files found",
        source=folder,
        expected="train.* / validation.* (or data/train-*.parquet) files, or a folder written "
        "by DatasetDict.save_to_disk",
    )


def _frames_from_cache_or_hub(hub_id: str, *, offline: bool | None) -> dict[str, pl.DataFrame]:
    cached = _cached_snapshot(hub_id)
    if cached is not None and any(_split_files(cached, split) for split in _HUB_SPLITS):
        return _frames_from_folder(cached, name=hub_id)
    reason = "offline=True was given" if offline else hub_offline_reason()
    how = (
        f"a local copy: source='path/to/folder' (the repository files of {hub_id}), or run "
        f"datasets.load_dataset({hub_id!r}) once on a connected machine to fill the cache"
    )
    if reason is not None:
        raise InputError(f"{hub_id} is not in the Hugging Face cache and {reason}", expected=how)
    datasets = _import_datasets(hub_id)
    try:
        loaded = datasets.load_dataset(hub_id)
    except Exception as error:  # the hub raises many kinds; the user needs one line
        raise InputError(f"could not load {hub_id}: {error}", expected=how) from None
    return _frames_from_mapping(
        {split: loaded[split] for split in _HUB_SPLITS if split in loaded}, name=hub_id
    )


def _cached_snapshot(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(hub_id, repo_type="dataset", local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache
        return None
    return Path(str(folder))


def _import_datasets(name: str) -> Any:
    try:
        # Imported by name: `datasets` is optional and ships no type information.
        return importlib.import_module("datasets")
    except ImportError:
        raise InputError(
            f"loading {name} this way needs the Hugging Face `datasets` package",
            expected="pip install datasets, or pass source= as polars frames or files",
        ) from None


def _with_columns(frame: pl.DataFrame, columns: Sequence[str], *, source: str) -> pl.DataFrame:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}",
            source=source,
            field=missing[0],
            expected="the hub schema: " + ", ".join(columns),
        )
    return frame.select(columns)


def _require_values(frame: pl.DataFrame, columns: Sequence[str], *, source: str) -> None:
    """Raise on the first null in ``columns``; ``frame`` carries the 0-based source ``row``."""
    for name in columns:
        nulls = frame[name].is_null()
        if nulls.any():
            raise InputError(
                "value missing",
                source=source,
                row=int(frame["row"][nulls.arg_max() or 0]) + 1,
                field=name,
            )
