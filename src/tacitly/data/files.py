"""Read preference pairs from the user's own files (JSONL, JSON, Parquet, CSV).

Two row forms are accepted, decided row by row:

- ``prompt``, ``chosen``, ``rejected``. Each is a string or a conversation (a list of
  ``{"role", "content"}``); a string prompt is one user turn, a string answer one assistant
  turn. ``prompt`` may be left out when ``chosen`` and ``rejected`` are whole conversations
  that share their opening turns (TRL's implicit-prompt form): the shared turns become the
  prompt.
- ``prompt``, ``response_a``, ``response_b``, ``label``. ``label`` names the preferred
  response: ``"a"`` or ``0`` for ``response_a``, ``"b"`` or ``1`` for ``response_b``
  (case-insensitive; "0"/"1" strings as in CSV too); ``"tie"`` rows are dropped as ties.

Optional fields: ``margin`` and ``weight`` (numbers or empty), ``meta`` (an object, merged
last so that a file written by :meth:`PreferenceDataset.to_jsonl` reads back unchanged),
``id``, and ``split`` (``train``/``validation``/``test``; when any row has it, every row
must). Any other field is kept in ``meta``. Without ``split``, rows are split 80/10/10 with
:func:`~tacitly.data.schema.grouped_split` grouped by ``meta["group"]`` (default: the prompt).

A folder holding ``train.*``, ``validation.*`` and/or ``test.*`` files is read split by
file. A CSV with the IFllm query-log columns is read by :func:`~tacitly.data.load_ifllm`.

A malformed row raises :class:`~tacitly.errors.InputError` naming the file, the row (JSONL:
line number; others: 1-based data row) and the field. Ties and pairs with identical answers
are dropped and recorded in ``PreferenceDataset.dropped``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import polars as pl

from tacitly.data.schema import (
    ROLES,
    SPLITS,
    DroppedRow,
    Message,
    PreferenceDataset,
    PreferenceRow,
    finish,
    grouped_split,
    make_row,
)
from tacitly.data.turns import split_shared_prefix
from tacitly.errors import InputError

__all__ = ["FILE_FRACTIONS", "FILE_SUFFIXES", "read_preference_file"]

StrPath = str | PathLike[str]

FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".parquet", ".csv")
FILE_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
_IFLLM_COLUMNS = frozenset({"query_ID", "user_id", "llm_response_1", "llm_response_2"})
_PAIRWISE_FIELDS = ("response_a", "response_b", "label")
_KNOWN_FIELDS = frozenset(
    {"prompt", "chosen", "rejected", *_PAIRWISE_FIELDS, "margin", "weight", "meta", "id", "split"}
)
_LABELS = {"a": "a", "0": "a", "b": "b", "1": "b", "tie": "tie"}


def read_preference_file(
    path: StrPath, *, seed: int = 42, split: str | None = None
) -> PreferenceDataset:
    """Read preference pairs from a local file or a folder of split files.

    Parameters
    ----------
    path:
        A .jsonl(.gz)/.ndjson, .json (a list of objects), .parquet or .csv file, or a folder
        with ``train``/``validation``/``test`` files of those types.
    seed:
        Split seed when rows carry no ``split`` (default: 42).
    split:
        Keep only this split (default: None, all three).

    Returns
    -------
    PreferenceDataset
        Named after the file (or folder).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "pairs.csv"
    >>> _ = file.write_text("prompt,response_a,response_b,label\\nHi?,Hello!,Go away.,a\\n")
    >>> row = read_preference_file(file).rows[0]
    >>> row["chosen"], row["rejected"][0]["content"]
    ([{'role': 'assistant', 'content': 'Hello!'}], 'Go away.')
    """
    location = Path(path)
    if location.is_dir():
        return _read_folder(location, seed=seed, split=split)
    if not location.is_file():
        raise InputError("file not found", source=location)
    if _is_ifllm_log(location):
        from tacitly.data.local import load_ifllm

        return load_ifllm(path=location, seed=seed, split=split)
    rows, split_of, dropped = _read_rows(location)
    if not split_of:
        split_of = grouped_split(
            [str(row["meta"]["group"]) for row in rows], fractions=FILE_FRACTIONS, seed=seed
        )
    return finish(
        name=location.name,
        rows=rows,
        split_of=split_of,
        dropped=dropped,
        description=f"local file {location}",
        split=split,
    )


def _read_folder(folder: Path, *, seed: int, split: str | None) -> PreferenceDataset:
    files = {name: _split_file(folder, name) for name in SPLITS}
    if not any(files.values()):
        raise InputError(
            "no split files found",
            source=folder,
            expected="train/validation/test files ending in " + ", ".join(FILE_SUFFIXES),
        )
    rows: list[PreferenceRow] = []
    split_of: list[str] = []
    dropped: list[DroppedRow] = []
    for name, file in files.items():
        if file is None:
            continue
        found, _, lost = _read_rows(file)
        rows += found
        split_of += [name] * len(found)
        dropped += [DroppedRow(f"{file.name}:{drop.id}", drop.reason) for drop in lost]
    del seed  # the files fix the split
    return finish(
        name=folder.name,
        rows=rows,
        split_of=split_of,
        dropped=dropped,
        description=f"local folder {folder}",
        split=split,
    )


def _split_file(folder: Path, split: str) -> Path | None:
    for suffix in FILE_SUFFIXES:
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _is_ifllm_log(file: Path) -> bool:
    if not file.name.lower().endswith(".csv"):
        return False
    with file.open(encoding="utf-8") as handle:
        header = handle.readline()
    return _IFLLM_COLUMNS.issubset(name.strip() for name in header.split(","))


# --- records -----------------------------------------------------------------------------


def _records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    name = file.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        yield from _json_line_records(file)
    elif name.endswith(".json"):
        yield from _json_records(file)
    elif name.endswith((".parquet", ".csv")):
        try:
            frame = (
                pl.read_parquet(file)
                if name.endswith(".parquet")
                else pl.read_csv(file, infer_schema=False)
            )
        except (OSError, pl.exceptions.PolarsError) as error:
            raise InputError(f"cannot read: {error}", source=file) from None
        yield from enumerate(frame.to_dicts(), start=1)
    else:
        raise InputError("unknown file type", source=file, expected=", ".join(FILE_SUFFIXES))


def _json_line_records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if file.name.lower().endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, _object(_json(line, file=file, row=number), file=file, row=number)


def _json_records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    content = _json(file.read_text(encoding="utf-8"), file=file, row=None)
    if not isinstance(content, list):
        raise InputError("not a JSON list", source=file, expected="a list of row objects")
    for number, record in enumerate(content, start=1):
        yield number, _object(record, file=file, row=number)


def _json(text: str, *, file: Path, row: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", source=file, row=row) from None


def _object(value: Any, *, file: Path, row: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("not a JSON object", source=file, row=row)
    return value


# --- rows --------------------------------------------------------------------------------


def _read_rows(file: Path) -> tuple[list[PreferenceRow], list[str], list[DroppedRow]]:
    """Rows, their given splits (empty when the file has none), and drops."""
    rows: list[PreferenceRow] = []
    splits: list[str | None] = []
    numbers: list[int] = []
    dropped: list[DroppedRow] = []
    for number, record in _records(file):
        reader = _RowReader(file=file, row=number, record=record)
        built = reader.row()
        if isinstance(built, str):
            dropped.append(DroppedRow(str(number), built))
            continue
        rows.append(built)
        numbers.append(number)
        splits.append(reader.split())
    given = [name for name in splits if name is not None]
    if given and len(given) != len(splits):
        missing = numbers[splits.index(None)]
        raise InputError(
            "split missing (other rows have one)", source=file, row=missing, field="split"
        )
    return rows, given, dropped


class _RowReader:
    """Turns one record into a pair, raising InputError that names file, row and field."""

    def __init__(self, *, file: Path, row: int, record: Mapping[str, Any]) -> None:
        self.file = file
        self.number = row
        self.record = record

    def error(self, message: str, field: str, expected: str | None = None) -> InputError:
        return InputError(
            message, source=self.file, row=self.number, field=field, expected=expected
        )

    def row(self) -> PreferenceRow | str:
        """The pair, or the reason it is dropped (tie, identical answers)."""
        if any(self._present(name) for name in _PAIRWISE_FIELDS):
            sides = self._labelled_sides()
            if sides is None:
                return "tie"
            prompt = self._conversation("prompt", default_role="user")
            chosen, rejected = sides
        elif self._present("prompt"):
            prompt = self._conversation("prompt", default_role="user")
            chosen = self._conversation("chosen", default_role="assistant")
            rejected = self._conversation("rejected", default_role="assistant")
        else:
            prompt, chosen, rejected = self._implicit_prompt()
        self._check(prompt, chosen, rejected)
        if [t["content"].strip() for t in chosen] == [t["content"].strip() for t in rejected]:
            return "identical responses"
        return make_row(
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            margin=self._number("margin"),
            weight=self._weight(),
            meta=self._meta(prompt),
        )

    def split(self) -> str | None:
        value = self.record.get("split")
        if value is None or value == "":
            return None
        if value not in SPLITS:
            raise self.error(f"split {value!r}", "split", expected=" or ".join(SPLITS))
        return str(value)

    def _present(self, name: str) -> bool:
        return self.record.get(name) is not None

    def _value(self, name: str) -> Any:
        if not self._present(name):
            raise self.error("field missing", name)
        return self.record[name]

    def _labelled_sides(self) -> tuple[list[Message], list[Message]] | None:
        first = self._conversation("response_a", default_role="assistant")
        second = self._conversation("response_b", default_role="assistant")
        raw = self._value("label")
        key = raw.strip().lower() if isinstance(raw, str) else raw
        if isinstance(raw, float) and raw.is_integer():
            key = int(raw)
        label = None if isinstance(raw, bool) else _LABELS.get(str(key))
        if label is None:
            raise self.error(
                f"label {raw!r}", "label", expected='"a" or 0 (response_a), "b" or 1, "tie"'
            )
        if label == "tie":
            return None
        return (first, second) if label == "a" else (second, first)

    def _implicit_prompt(self) -> tuple[list[Message], list[Message], list[Message]]:
        chosen_value, rejected_value = self._value("chosen"), self._value("rejected")
        if isinstance(chosen_value, str) or isinstance(rejected_value, str):
            raise self.error(
                "field missing (chosen and rejected are plain answers)",
                "prompt",
                expected="a prompt, or chosen/rejected as whole conversations",
            )
        whole_chosen = self._conversation("chosen", default_role="assistant")
        whole_rejected = self._conversation("rejected", default_role="assistant")
        prompt, chosen, rejected = split_shared_prefix(whole_chosen, whole_rejected)
        if not prompt:
            raise self.error(
                "chosen and rejected share no opening turns", "prompt", expected="a prompt"
            )
        return prompt, chosen, rejected

    def _conversation(self, name: str, *, default_role: str) -> list[Message]:
        value = self._value(name)
        if isinstance(value, str):
            if not value.strip():
                raise self.error("empty text", name)
            return [Message(role=default_role, content=value)]
        if not isinstance(value, list) or not value:
            raise self.error(
                f"{type(value).__name__} value",
                name,
                expected="text or a non-empty list of {role, content} messages",
            )
        return [self._message(item, name=name, index=index) for index, item in enumerate(value)]

    def _message(self, item: Any, *, name: str, index: int) -> Message:
        where = f"{name}[{index}]"
        if not isinstance(item, Mapping):
            raise self.error("not a message", where, expected="{role, content}")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise self.error(f"role {role!r}", where, expected="system, user or assistant")
        if not isinstance(content, str) or not content.strip():
            raise self.error("content missing or empty", where, expected="non-empty text")
        return Message(role=str(role), content=content)

    def _check(
        self, prompt: Sequence[Message], chosen: Sequence[Message], rejected: Sequence[Message]
    ) -> None:
        if prompt[-1]["role"] != "user":
            raise self.error("the prompt does not end with a user turn", "prompt")
        for name, turns in (("chosen", chosen), ("rejected", rejected)):
            if not turns:
                raise self.error("no answer after the shared turns", name)
            if any(turn["role"] != "assistant" for turn in turns):
                raise self.error("an answer turn is not the assistant's", name)

    def _number(self, name: str) -> float | None:
        value = self.record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.error(f"{value!r} is not a number", name) from None
        if not math.isfinite(number):
            raise self.error(f"{value!r} is not finite", name)
        return number

    def _weight(self) -> float | None:
        weight = self._number("weight")
        if weight is not None and weight < 0:
            raise self.error(f"negative weight {weight}", "weight", expected="a weight >= 0")
        return weight

    def _meta(self, prompt: Sequence[Message]) -> dict[str, Any]:
        given = self.record.get("meta")
        if given is not None and not isinstance(given, Mapping):
            raise self.error(f"{type(given).__name__} value", "meta", expected="an object")
        identifier = self.record.get("id")
        meta: dict[str, Any] = {
            "source": self.file.name,
            "id": str(identifier) if identifier is not None else str(self.number),
            "group": json.dumps(list(prompt), ensure_ascii=False),
        }
        meta.update({key: v for key, v in self.record.items() if key not in _KNOWN_FIELDS})
        meta.update(given or {})
        return meta
