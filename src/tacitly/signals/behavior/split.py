"""Split an IFllm-layout folder into two folders whose workers are disjoint.

A behaviour reward must be judged on people it has never seen, and ``tacitly behavior eval
--train A --test B`` does that for two folders. :func:`split_by_worker` makes such a pair from
one folder: every worker goes wholly to one side, with all of their query-log rows, task rows
and trace files.

Policies
--------
Which workers are held out
    Workers (the query log's ``user_id``) are shuffled with ``seed`` and moved to the test side
    until it holds at least ``test_share`` of the side-by-side questions (rows with both
    answers). Each side keeps at least one worker.
What is copied
    ``query_logs_table.csv`` and ``task_table.csv`` (when present) keep their header and the
    rows of the side's workers, field for field. The traces go into a fresh
    ``user_behavior.tar.gz`` per side, read from the source archive member by member or from
    the extracted ``user_behavior/`` folder; trace folders of workers absent from the query
    log are left out and counted.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from tacitly.errors import InputError

__all__ = ["WorkerSplit", "split_by_worker"]

StrPath = str | PathLike[str]

_QUERY_LOG = "query_logs_table.csv"
_TASK_TABLE = "task_table.csv"
_ARCHIVE = "user_behavior.tar.gz"


@dataclass
class WorkerSplit:
    """What :func:`split_by_worker` wrote."""

    train: Path
    test: Path
    workers: dict[str, list[str]] = field(default_factory=dict)
    """Worker ids per side (``"train"``, ``"test"``)."""
    questions: dict[str, int] = field(default_factory=dict)
    """Side-by-side questions per side."""
    trace_files: dict[str, int] = field(default_factory=dict)
    """Trace files copied per side."""
    dropped_trace_files: int = 0
    """Trace files of workers that have no row in the query log."""


def split_by_worker(
    root: StrPath, output: StrPath, *, test_share: float = 0.25, seed: int = 0
) -> WorkerSplit:
    """Write ``output/train`` and ``output/test``: the folder's workers, split between them.

    Parameters
    ----------
    root:
        IFllm-layout folder (``query_logs_table.csv``, optionally ``task_table.csv``, and
        ``user_behavior.tar.gz`` or ``user_behavior/``).
    output:
        Folder to write the two sides into (created; existing files are overwritten).
    test_share:
        Share of side-by-side questions to hold out, in (0, 1) (default: 0.25).
    seed:
        Seed of the worker shuffle (default: 0).

    Returns
    -------
    WorkerSplit
        The two folders and what went where.

    Raises
    ------
    InputError
        Without a query log, with a query log lacking ``user_id``, with fewer than two workers,
        or with ``test_share`` outside (0, 1).
    """
    if not 0.0 < test_share < 1.0:
        raise InputError(f"test_share is {test_share}", field="test_share", expected="0 < x < 1")
    source = Path(root)
    header, rows = _read_table(source / _QUERY_LOG)
    user = _column(header, "user_id", source / _QUERY_LOG)
    pairwise = Counter(row[user] for row in rows if _pairwise(row, header))
    workers = sorted({row[user] for row in rows})
    if len(workers) < 2:
        raise InputError(
            f"{len(workers)} worker(s) in the query log",
            source=source / _QUERY_LOG,
            expected="at least two workers to split",
        )
    held_out = _held_out_workers(workers, pairwise, test_share, seed)
    out = Path(output)
    split = WorkerSplit(train=out / "train", test=out / "test")
    for side, folder in (("train", split.train), ("test", split.test)):
        keep = held_out if side == "test" else set(workers) - held_out
        folder.mkdir(parents=True, exist_ok=True)
        _write_table(folder / _QUERY_LOG, header, [r for r in rows if r[user] in keep])
        if (source / _TASK_TABLE).is_file():
            task_header, task_rows = _read_table(source / _TASK_TABLE)
            task_user = _column(task_header, "user_id", source / _TASK_TABLE)
            _write_table(
                folder / _TASK_TABLE,
                task_header,
                [r for r in task_rows if r[task_user] in keep],
            )
        split.workers[side] = sorted(keep)
        split.questions[side] = sum(pairwise[w] for w in keep)
    _split_traces(source, split, held_out, set(workers))
    return split


def _pairwise(row: list[str], header: list[str]) -> bool:
    return "llm_response_2" in header and row[header.index("llm_response_2")].strip() != ""


def _held_out_workers(
    workers: list[str], pairwise: Counter[str], test_share: float, seed: int
) -> set[str]:
    order = [workers[i] for i in np.random.default_rng(seed).permutation(len(workers))]
    total = sum(pairwise.values())
    held: set[str] = set()
    count = 0
    for worker in order[:-1]:  # the last one always stays in training
        if held and count >= test_share * total:
            break
        held.add(worker)
        count += pairwise[worker]
    return held


def _read_table(file: Path) -> tuple[list[str], list[list[str]]]:
    if not file.is_file():
        raise InputError("file not found", source=file, expected="an IFllm-layout folder")
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError("empty file", source=file, expected="a header and rows")
        rows = list(reader)
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise InputError(
                f"{len(row)} fields",
                source=file,
                row=number,
                expected=f"{len(header)} fields, as in the header",
            )
    return header, rows


def _column(header: list[str], name: str, file: Path) -> int:
    if name not in header:
        raise InputError("missing column", source=file, field=name)
    return header.index(name)


def _write_table(file: Path, header: list[str], rows: list[list[str]]) -> None:
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _split_traces(source: Path, split: WorkerSplit, held_out: set[str], known: set[str]) -> None:
    split.trace_files = {"train": 0, "test": 0}
    with (
        tarfile.open(split.train / _ARCHIVE, mode="w:gz") as train,
        tarfile.open(split.test / _ARCHIVE, mode="w:gz") as test,
    ):
        archives = {"train": train, "test": test}
        for name, data in _trace_files(source):
            worker = name.split("/")[1]
            if worker not in known:
                split.dropped_trace_files += 1
                continue
            side = "test" if worker in held_out else "train"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archives[side].addfile(info, io.BytesIO(data))
            split.trace_files[side] += 1


def _trace_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """``(user_behavior/<worker>/<task>/<file>, bytes)`` in the source's order."""
    folder, archive = source / "user_behavior", source / _ARCHIVE
    if folder.is_dir():
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            parts = file.relative_to(source).parts
            if len(parts) == 4:
                yield "/".join(parts), file.read_bytes()
        return
    if not archive.is_file():
        return
    try:
        with tarfile.open(archive, mode="r|*") as members:
            for member in members:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 4 or parts[0] != "user_behavior":
                    continue
                handle = members.extractfile(member)
                yield "/".join(parts), handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"cannot read the archive: {error}", source=archive) from error
