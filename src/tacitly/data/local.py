"""Builders for the preference sets in the shared development data (``../shared/data``).

- :func:`load_autoj`: Auto-J pairwise test set (``preferences/autoj_pairwise.jsonl``).
- :func:`load_hh_rlhf`: Anthropic HH-RLHF harmless-base test split
  (``preferences/hh_rlhf_harmless_base_test.jsonl.gz``).
- :func:`load_ifllm`: the pairwise questions of the IFllm query log
  (``ifllm/query_logs_table.csv``).

Each splits 80/10/10 (train/validation/test) with :func:`~tacitly.data.schema.grouped_split`:
Auto-J grouped by prompt text (up to 12 pairs share one), HH-RLHF by the first user turn (so
that conversations opening the same way never cross splits), IFllm by worker (``user_id``).

The data folder is the ``data_dir`` argument, else ``$TACITLY_DATA``, else ``../shared/data``
relative to the working directory.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

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
from tacitly.data.turns import parse_hh_transcript, split_shared_prefix
from tacitly.errors import InputError

__all__ = ["LOCAL_FRACTIONS", "data_root", "load_autoj", "load_hh_rlhf", "load_ifllm"]

StrPath = str | PathLike[str]

LOCAL_FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
AUTOJ_FILE = "preferences/autoj_pairwise.jsonl"
HH_FILE = "preferences/hh_rlhf_harmless_base_test.jsonl.gz"
IFLLM_FILE = "ifllm/query_logs_table.csv"


def data_root(data_dir: StrPath | None = None) -> Path:
    """The shared data folder: ``data_dir``, else ``$TACITLY_DATA``, else ``../shared/data``.

    Examples
    --------
    >>> data_root("/tmp/my-data").as_posix()
    '/tmp/my-data'
    """
    if data_dir is not None:
        return Path(data_dir)
    configured = os.environ.get("TACITLY_DATA", "").strip()
    return Path(configured) if configured else Path.cwd().parent / "shared" / "data"


def _data_file(path: StrPath | None, data_dir: StrPath | None, relative: str, what: str) -> Path:
    file = Path(path) if path is not None else data_root(data_dir) / relative
    if not file.is_file():
        raise InputError(
            f"{what} not found",
            source=file,
            expected=f"the file {relative} under the shared data folder "
            "(pass path=... or data_dir=..., or set TACITLY_DATA)",
        )
    return file


def _json_lines(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"not JSON: {error.msg}", source=file, row=number) from None
            if not isinstance(record, dict):
                raise InputError("not a JSON object", source=file, row=number)
            yield number, record


def _field(record: dict[str, Any], name: str, *, file: Path, row: int) -> Any:
    if name not in record:
        raise InputError("field missing", source=file, row=row, field=name)
    return record[name]


def _text(record: dict[str, Any], name: str, *, file: Path, row: int) -> str:
    value = _field(record, name, file=file, row=row)
    if not isinstance(value, str):
        raise InputError(
            f"{type(value).__name__} where text was expected", source=file, row=row, field=name
        )
    return value


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text.strip())]


def _assistant(text: str) -> list[Message]:
    return [Message(role="assistant", content=text.strip())]


def load_autoj(
    *,
    path: StrPath | None = None,
    data_dir: StrPath | None = None,
    seed: int = 42,
    split: str | None = None,
) -> PreferenceDataset:
    """Auto-J pairwise test set (1,392 pairs, 58 scenarios); ties dropped.

    ``label`` 0 means response 1 is preferred, 1 response 2, 2 a tie. This was checked on the
    real rows: e.g. for "Please translate "奋斗者" to English." label 0 goes with response 1
    "Perseverers" over an unrelated sentence, and for "Translate to telugu: How are you?"
    label 1 goes with response 2, the correct translation. ``meta`` keeps ``scenario`` (for
    per-scenario accuracy), ``label``, ``chosen_position`` (1 or 2) and ``row`` (line number).

    Parameters
    ----------
    path:
        The JSONL file (default: ``preferences/autoj_pairwise.jsonl`` under the data folder).
    data_dir:
        The shared data folder (default: ``$TACITLY_DATA`` or ``../shared/data``).
    seed:
        Split seed; splits are 80/10/10 grouped by prompt text (default: 42).
    split:
        Keep only this split (default: None, all three).

    Returns
    -------
    PreferenceDataset
        1,019 pairs on the shared copy (373 ties dropped).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "autoj.jsonl"
    >>> _ = file.write_text('{"scenario": "chitchat", "label": 1, "prompt": "Hi", '
    ...                     '"response 1": "Go away", "response 2": "Hello!"}\\n')
    >>> load_autoj(path=file).rows[0]["chosen"]
    [{'role': 'assistant', 'content': 'Hello!'}]
    """
    file = _data_file(path, data_dir, AUTOJ_FILE, "Auto-J pairwise file")
    rows: list[PreferenceRow] = []
    groups: list[str] = []
    dropped: list[DroppedRow] = []
    for number, record in _json_lines(file):
        label = _field(record, "label", file=file, row=number)
        if label not in (0, 1, 2) or isinstance(label, bool):
            raise InputError(
                f"label {label!r}", source=file, row=number, field="label", expected="0, 1 or 2"
            )
        prompt = _text(record, "prompt", file=file, row=number)
        first = _text(record, "response 1", file=file, row=number)
        second = _text(record, "response 2", file=file, row=number)
        if label == 2:
            dropped.append(DroppedRow(str(number), "tie"))
            continue
        chosen, rejected = (first, second) if label == 0 else (second, first)
        problem = pair_problem(_user(prompt), _assistant(chosen), _assistant(rejected))
        if problem is not None:
            dropped.append(DroppedRow(str(number), problem))
            continue
        scenario = _text(record, "scenario", file=file, row=number)
        meta = {
            "source": "autoj",
            "id": str(number),
            "group": prompt.strip(),
            "row": number,
            "scenario": scenario,
            "label": label,
            "chosen_position": label + 1,
        }
        rows.append(
            make_row(
                prompt=_user(prompt),
                chosen=_assistant(chosen),
                rejected=_assistant(rejected),
                meta=meta,
            )
        )
        groups.append(prompt.strip())
    return finish(
        name="autoj",
        rows=rows,
        split_of=grouped_split(groups, fractions=LOCAL_FRACTIONS, seed=seed),
        dropped=dropped,
        description="Auto-J pairwise test set; ties dropped; 80/10/10 grouped by prompt",
        split=split,
    )


def load_hh_rlhf(
    *,
    path: StrPath | None = None,
    data_dir: StrPath | None = None,
    seed: int = 42,
    split: str | None = None,
) -> PreferenceDataset:
    """Anthropic HH-RLHF pairs (harmless-base test split on the shared copy).

    Each transcript is parsed into turns (see :mod:`tacitly.data.turns`); the prompt is the
    turns both transcripts share, chosen and rejected the turns after it. A pair is dropped,
    with its reason, when a transcript does not start with a Human turn, when the two differ
    before the final assistant turn, when a final answer is empty, or when the answers are
    identical. ``meta`` keeps ``row`` (line number).

    Parameters
    ----------
    path:
        The JSONL(.gz) file with ``chosen`` and ``rejected`` transcripts
        (default: ``preferences/hh_rlhf_harmless_base_test.jsonl.gz`` under the data folder).
    data_dir:
        The shared data folder (default: ``$TACITLY_DATA`` or ``../shared/data``).
    seed:
        Split seed; splits are 80/10/10 grouped by the first user turn (default: 42).
    split:
        Keep only this split (default: None, all three).

    Returns
    -------
    PreferenceDataset
        2,306 pairs on the shared copy (4 empty answers, 2 early divergences dropped).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "hh.jsonl"
    >>> pair = {"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: Hello!",
    ...         "rejected": "\\n\\nHuman: Hi\\n\\nAssistant: What?"}
    >>> _ = file.write_text(json.dumps(pair) + "\\n")
    >>> row = load_hh_rlhf(path=file).rows[0]
    >>> row["prompt"], row["rejected"]
    ([{'role': 'user', 'content': 'Hi'}], [{'role': 'assistant', 'content': 'What?'}])
    """
    file = _data_file(path, data_dir, HH_FILE, "HH-RLHF file")
    rows: list[PreferenceRow] = []
    groups: list[str] = []
    dropped: list[DroppedRow] = []
    for number, record in _json_lines(file):
        chosen_turns = parse_hh_transcript(_text(record, "chosen", file=file, row=number))
        rejected_turns = parse_hh_transcript(_text(record, "rejected", file=file, row=number))
        if chosen_turns is None or rejected_turns is None:
            dropped.append(DroppedRow(str(number), "transcript does not start with a Human turn"))
            continue
        prompt, chosen, rejected = split_shared_prefix(chosen_turns, rejected_turns)
        if not chosen and not rejected:
            problem: str | None = "identical responses"
        else:
            problem = pair_problem(prompt, chosen, rejected)
        if problem is not None:
            dropped.append(DroppedRow(str(number), problem))
            continue
        group = prompt[0]["content"]
        meta = {"source": "hh-rlhf", "id": str(number), "group": group, "row": number}
        rows.append(make_row(prompt=prompt, chosen=chosen, rejected=rejected, meta=meta))
        groups.append(group)
    return finish(
        name="hh-rlhf",
        rows=rows,
        split_of=grouped_split(groups, fractions=LOCAL_FRACTIONS, seed=seed),
        dropped=dropped,
        description="Anthropic HH-RLHF; 80/10/10 grouped by first user turn",
        split=split,
    )


def load_ifllm(
    *,
    path: StrPath | None = None,
    data_dir: StrPath | None = None,
    seed: int = 42,
    split: str | None = None,
) -> PreferenceDataset:
    """The pairwise questions of the IFllm query log, labelled by the worker's preference.

    ``preference`` 1.0 makes response 1 (left) chosen, 2.0 response 2 (right). Rows with one
    response ("single response"), or with no preference given, are dropped with that reason.
    ``meta`` keeps ``user_id``, ``task_id``, ``query_ID``, ``query_timestamp`` (ISO, UTC),
    ``chosen_position`` (1 or 2), ``likert_1``, ``likert_2`` (1–5, per position),
    ``llm_name_1``, ``llm_name_2`` and ``likert_chosen``/``likert_rejected``, ``llm_chosen``/
    ``llm_rejected``; ``margin`` and ``weight`` stay None (the Likert ratings do not always
    agree with the preference, so they are not turned into a margin here).

    Parameters
    ----------
    path:
        ``query_logs_table.csv`` or the folder holding it
        (default: ``ifllm/query_logs_table.csv`` under the data folder).
    data_dir:
        The shared data folder (default: ``$TACITLY_DATA`` or ``../shared/data``).
    seed:
        Split seed; splits are 80/10/10 grouped by worker, ``user_id`` (default: 42).
    split:
        Keep only this split (default: None, all three).

    Returns
    -------
    PreferenceDataset
        544 pairs from 44 workers on the shared copy (568 pairwise rows, 24 without a
        preference).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "query_logs_table.csv"
    >>> _ = file.write_text(
    ...     "query_ID,user_id,task_id,user_query,llm_response_1,llm_response_2,preference,"
    ...     "query_timestamp\\n"
    ...     "1,w1,4,Why?,Because.,Dunno.,2.0,2025-04-23 22:32:38\\n"
    ... )
    >>> load_ifllm(path=file).rows[0]["chosen"]
    [{'role': 'assistant', 'content': 'Dunno.'}]
    """
    from tacitly.signals.gaze.readers import read_ifllm_queries

    located = Path(path) if path is not None else None
    if located is not None and located.is_dir():
        located = located / "query_logs_table.csv"
    file = _data_file(located, data_dir, IFLLM_FILE, "IFllm query log")
    queries = read_ifllm_queries(file).with_row_index("row", offset=1)
    rows: list[PreferenceRow] = []
    groups: list[str] = []
    dropped: list[DroppedRow] = []
    for record in queries.iter_rows(named=True):
        identifier = str(record["query_ID"])
        if not record["pairwise"]:
            dropped.append(DroppedRow(identifier, "single response"))
            continue
        if record["preference"] not in (1.0, 2.0):
            dropped.append(DroppedRow(identifier, "no preference given"))
            continue
        pair = _ifllm_pair(record)
        problem = pair_problem(pair["prompt"], pair["chosen"], pair["rejected"])
        if problem is not None:
            dropped.append(DroppedRow(identifier, problem))
            continue
        rows.append(pair)
        groups.append(str(record["user_id"]))
    return finish(
        name="ifllm",
        rows=rows,
        split_of=grouped_split(groups, fractions=LOCAL_FRACTIONS, seed=seed),
        dropped=dropped,
        description="IFllm pairwise questions; 80/10/10 grouped by worker",
        split=split,
    )


def _ifllm_pair(record: dict[str, Any]) -> PreferenceRow:
    position = 1 if record["preference"] == 1.0 else 2
    other = 3 - position
    timestamp = record["query_timestamp"]
    meta = {
        "source": "ifllm",
        "id": str(record["query_ID"]),
        "group": str(record["user_id"]),
        "row": record["row"],
        "user_id": record["user_id"],
        "task_id": record["task_id"],
        "query_ID": record["query_ID"],
        "query_timestamp": None if timestamp is None else timestamp.isoformat(),
        "chosen_position": position,
        "likert_1": record.get("likert_1"),
        "likert_2": record.get("likert_2"),
        "llm_name_1": record.get("llm_name_1"),
        "llm_name_2": record.get("llm_name_2"),
        "likert_chosen": record.get(f"likert_{position}"),
        "likert_rejected": record.get(f"likert_{other}"),
        "llm_chosen": record.get(f"llm_name_{position}"),
        "llm_rejected": record.get(f"llm_name_{other}"),
    }
    return make_row(
        prompt=_user(record["user_query"] or ""),
        chosen=_assistant(record[f"llm_response_{position}"] or ""),
        rejected=_assistant(record[f"llm_response_{other}"] or ""),
        meta=meta,
    )
