"""Split an IFllm-layout folder into two folders whose workers are disjoint.

A behaviour reward must be judged on people it has never seen, and ``tacitly behavior eval
--train A --test B`` does that for two folders. :func:`split_by_worker` makes such a pair from
one folder: every worker goes wholly to one side, with all of their query-log rows, task rows
and trace files.

Policies
--------
Which workers are held out
    Workers (the query log's ``user_id``) are shuffled with ``seed``; in that order each one
    moves to the test side when that brings the test side's share of side-by-side questions
    (rows with both answers) closer to ``test_share``. One worker with many questions can
    make the share miss the target; the summary gives the counts. Each side keeps at least
    one worker.
What is copied
    ``query_logs_table.csv`` and ``task_table.csv`` (when present) keep their header and the
    rows of the side's workers, field for field (UTF-8 or UTF-16 in, UTF-8 out; blank lines
    are skipped; a quoted empty field is written as an empty one, which readers take alike).
    The traces go into a fresh ``user_behavior.tar.gz`` per side, read from the source
    archive member by member or from the extracted ``user_behavior/`` folder, with the same
    member paths the reader accepts (``…/<worker>/<task>/<file>``). Task-table rows and trace
    files of workers absent from the query log, and links inside an archive, are left out
    and counted.
Where it writes
    ``output/train`` and ``output/test`` must not be, or contain, the source folder.
"""

from __future__ import annotations

import csv
import io
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from tacitly.errors import InputError
from tacitly.signals.gaze.readers import _csv_source

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
    """Trace files of workers that have no row in the query log, and links in an archive."""
    dropped_task_rows: int = 0
    """Task-table rows of workers that have no row in the query log."""


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
        Target share of side-by-side questions to hold out, in (0, 1) (default: 0.25).
    seed:
        Seed of the worker shuffle (default: 0).

    Returns
    -------
    WorkerSplit
        The two folders and what went where.

    Raises
    ------
    InputError
        Without a query log, with a query log lacking ``user_id`` or with a row of the wrong
        length, with fewer than two workers, with ``test_share`` outside (0, 1), or when an
        output folder is, or contains, the source.
    """
    if not 0.0 < test_share < 1.0:
        raise InputError(f"test_share is {test_share}", field="test_share", expected="0 < x < 1")
    source = Path(root)
    split = WorkerSplit(train=Path(output) / "train", test=Path(output) / "test")
    _check_outside(source, (split.train, split.test))
    header, rows = _read_table(source / _QUERY_LOG)
    user = _column(header, "user_id", source / _QUERY_LOG)
    second = header.index("llm_response_2") if "llm_response_2" in header else None
    pairwise = Counter(row[user] for row in rows if second is not None and row[second].strip())
    known = {row[user] for row in rows}
    workers = sorted(known)
    if len(workers) < 2:
        raise InputError(
            f"{len(workers)} worker(s) in the query log",
            source=source / _QUERY_LOG,
            expected="at least two workers to split",
        )
    held_out = _held_out_workers(workers, pairwise, test_share, seed)
    tasks = _read_table(source / _TASK_TABLE) if (source / _TASK_TABLE).is_file() else None
    if tasks is not None:
        task_user = _column(tasks[0], "user_id", source / _TASK_TABLE)
        split.dropped_task_rows = sum(row[task_user] not in known for row in tasks[1])
    for side, folder in (("train", split.train), ("test", split.test)):
        keep = held_out if side == "test" else known - held_out
        _make_folder(folder)
        _write_table(folder / _QUERY_LOG, header, [r for r in rows if r[user] in keep])
        if tasks is not None:
            _write_table(
                folder / _TASK_TABLE, tasks[0], [r for r in tasks[1] if r[task_user] in keep]
            )
        split.workers[side] = sorted(keep)
        split.questions[side] = sum(pairwise[w] for w in keep)
    _split_traces(source, split, held_out, known)
    return split


def _check_outside(source: Path, folders: tuple[Path, ...]) -> None:
    origin = source.resolve()
    for folder in folders:
        target = folder.resolve()
        if target == origin or target in origin.parents:
            raise InputError(
                f"{folder} is or contains the folder being split",
                source=source,
                field="output",
                expected="an output folder outside the source",
            )


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create the folder: {error.strerror or error}", source=folder, field="output"
        ) from error


def _held_out_workers(
    workers: list[str], pairwise: Counter[str], test_share: float, seed: int
) -> set[str]:
    order = [workers[i] for i in np.random.default_rng(seed).permutation(len(workers))]
    target = test_share * sum(pairwise.values())
    held: set[str] = set()
    count = 0
    for worker in order[:-1]:  # the last one always stays in training
        if abs(count + pairwise[worker] - target) < abs(count - target):
            held.add(worker)
            count += pairwise[worker]
    return held or {order[0]}


def _read_table(file: Path) -> tuple[list[str], list[list[str]]]:
    if not file.is_file():
        raise InputError("file not found", source=file, expected="an IFllm-layout folder")
    csv.field_size_limit(sys.maxsize)  # answers can be longer than csv's 128 KiB default
    try:
        source = _csv_source(file)  # UTF-16 logs come back as UTF-8 bytes, as for the reader
        raw = source if isinstance(source, bytes) else file.read_bytes()
        text = raw.decode("utf-8-sig")
        table = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except (UnicodeError, csv.Error, OSError) as error:
        raise InputError(f"cannot read the table: {error}", source=file) from error
    if not table:
        raise InputError("empty file", source=file, expected="a header and rows")
    header, rows = table[0], table[1:]
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
            worker = Path(name).parts[-3] if data is not None else None
            if data is None or worker not in known:
                split.dropped_trace_files += 1
                continue
            side = "test" if worker in held_out else "train"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archives[side].addfile(info, io.BytesIO(data))
            split.trace_files[side] += 1


def _trace_files(source: Path) -> Iterator[tuple[str, bytes | None]]:
    """``(member path, bytes)`` of every trace file (bytes None for a link in an archive).

    Files are found as the trace reader finds them: ``<worker>/<task>/<file>`` under the
    extracted folder (links to folders followed), or any archive member at least three
    levels deep.
    """
    folder, archive = source / "user_behavior", source / _ARCHIVE
    if folder.is_dir():
        for worker in sorted(p for p in folder.iterdir() if p.is_dir()):
            for task in sorted(p for p in worker.iterdir() if p.is_dir()):
                for file in sorted(p for p in task.iterdir() if p.is_file()):
                    yield f"user_behavior/{worker.name}/{task.name}/{file.name}", file.read_bytes()
        return
    if not archive.is_file():
        return
    try:
        with tarfile.open(archive, mode="r|*") as members:
            for member in members:
                if len(Path(member.name).parts) < 3 or member.isdir():
                    continue
                if not member.isfile():
                    yield member.name, None
                    continue
                handle = members.extractfile(member)
                yield member.name, handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"cannot read the archive: {error}", source=archive) from error
