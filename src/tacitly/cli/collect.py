"""``tacitly collect``: serve a reading study, and export, summarise or erase what it recorded.

The collection app needs the ``collect`` extra (FastAPI, SQLAlchemy, …); this module imports it
only inside the commands, so that ``tacitly --help`` works without it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tacitly.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tacitly.collect.store import Base, Store

__all__ = ["collect_app", "summarise"]

collect_app = typer.Typer(
    help="Collection app: serve a reading study; export, summarise or erase its data.",
    no_args_is_help=True,
)
console = Console()

_Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (postgresql://…) or SQLite path [default: study.db here].",
        show_default=False,
    ),
]


class ExportFormat(StrEnum):
    ifllm = "ifllm"
    preferences = "preferences"


# --------------------------------------------------------------------------------------------
# serve


@collect_app.command("serve")
def serve_command(
    study: Annotated[
        Path | None,
        typer.Option(
            help="Study YAML file [default: the embedded demo study].", show_default=False
        ),
    ] = None,
    db: _Db = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (use several with PostgreSQL).", min=1)
    ] = 1,
) -> None:
    """Serve the study until interrupted (Ctrl+C)."""
    _require_collect_extra()
    from tacitly.collect import runner
    from tacitly.collect.store import database_url

    title = _check_study(study)
    base = f"http://{_display_host(host)}:{port}"
    console.print(
        f'serving "{title}" on {host}:{port} with {workers} worker(s); '
        f"database {_safe_url(database_url(db))}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"consent page: {base}/", highlight=False, soft_wrap=True)
    runner.serve(study=study, db=db, host=host, port=port, workers=workers)


def _check_study(study: Path | None) -> str:
    """Load the study and build its pair source once, so a bad file or a missing API key
    fails here, before any worker starts; returns the study's title."""
    from tacitly.collect.generators import make_source
    from tacitly.collect.study import default_study, load_study

    config = load_study(study) if study is not None else default_study()
    source = make_source(config)
    close = getattr(source, "close", None)
    if callable(close):
        close()
    return config.title


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------------
# export


@collect_app.command("export")
def export_command(
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="ifllm: the IFllm folder layout (for `tacitly behavior`); preferences: one "
            "preference row per rated task (JSONL).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder (ifllm) or .jsonl file (preferences).")
    ],
    db: _Db = None,
) -> None:
    """Export the recorded data."""
    store = _open_store(db)
    try:
        from tacitly.collect import export

        if export_format is ExportFormat.ifllm:
            written = export.export_ifllm(store, output)
        else:
            written = export.export_preferences(store, output)
    finally:
        store.close()
    console.print(f"wrote the {export_format.value} export to {written}", highlight=False)


# --------------------------------------------------------------------------------------------
# status


@collect_app.command("status")
def status_command(
    db: _Db = None,
    recent: Annotated[
        int, typer.Option(help="Participants to list, most recently active first (0: all).", min=0)
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Summarise the study: participants, sessions, tasks, batches, samples by kind."""
    store = _open_store(db)
    try:
        summary = summarise(store, recent=recent)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _print_summary(summary)


def summarise(store: Store, *, recent: int = 20) -> dict[str, Any]:
    """Counts of everything a study database holds, and its most recently active participants.

    Parameters
    ----------
    store:
        The study database.
    recent:
        How many participants to list, most recently active first (default: 20; 0: all).

    Returns
    -------
    dict
        ``participants``, ``sessions`` / ``tasks`` / ``calibrations`` (each ``total`` and
        ``finished`` / ``rated`` / ``passed``), ``batches``, ``layouts`` (``total`` and
        ``word_boxes``), ``samples`` (``total`` and ``by_kind``), ``last_activity_ms`` and
        ``last_activity`` (ISO 8601, UTC; None for an empty database), and
        ``recent_participants`` (one dict each).
    """
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from tacitly.collect.store import (
        Calibration,
        Participant,
        StoredBatch,
        StoredLayout,
        StoredSample,
        StudySession,
        Task,
        WordBox,
    )

    with Session(store.engine) as db:

        def count(*columns: Any) -> list[int]:
            row = db.execute(select(*columns)).one()
            return [int(value or 0) for value in row]

        participants = count(func.count(Participant.id))[0]
        sessions, finished = count(
            func.count(StudySession.id), func.count(StudySession.finished_ms)
        )
        tasks, rated = count(func.count(Task.id), func.count(Task.preference))
        calibrations, passed = count(
            func.count(Calibration.id), func.count(Calibration.id).filter(Calibration.passed)
        )
        batches = _count_rows(db, StoredBatch)
        layouts = _count_rows(db, StoredLayout)
        word_boxes = _count_rows(db, WordBox)
        by_kind = {
            str(kind): int(n)
            for kind, n in db.execute(
                select(StoredSample.kind, func.count())
                .group_by(StoredSample.kind)
                .order_by(StoredSample.kind)
            )
        }
        columns = (
            Participant.created_ms,
            StudySession.created_ms,
            StudySession.finished_ms,
            Task.shown_ms,
            Task.rated_ms,
            Calibration.created_ms,
            StoredBatch.received_ms,
        )
        # One statement of scalar subqueries rather than a round trip per table.
        latest = db.execute(select(*(select(func.max(c)).scalar_subquery() for c in columns))).one()
        listed = _participant_rows(db, limit=recent)
    last = max((int(value) for value in latest if value is not None), default=None)
    return {
        "database": _safe_url(store.url),
        "participants": participants,
        "sessions": {"total": sessions, "finished": finished, "unfinished": sessions - finished},
        "tasks": {"total": tasks, "rated": rated, "unrated": tasks - rated},
        "calibrations": {"total": calibrations, "passed": passed},
        "batches": batches,
        "layouts": {"total": layouts, "word_boxes": word_boxes},
        "samples": {"total": sum(by_kind.values()), "by_kind": by_kind},
        "last_activity_ms": last,
        "last_activity": _iso(last),
        "recent_participants": listed,
    }


def _count_rows(db: Session, table: type[Base]) -> int:
    from sqlalchemy import func, select

    return int(db.scalar(select(func.count()).select_from(table)) or 0)


def _participant_rows(db: Session, *, limit: int) -> list[dict[str, Any]]:
    """Per participant: sessions (finished), tasks (rated), samples, last activity."""
    from sqlalchemy import func, select

    from tacitly.collect.store import Participant, StoredBatch, StudySession, Task

    rows: dict[str, dict[str, Any]] = {}
    for pid, external, created in db.execute(
        select(Participant.id, Participant.external_id, Participant.created_ms)
    ):
        rows[pid] = {
            "id": pid,
            "external_id": external,
            "sessions": 0,
            "finished": 0,
            "tasks": 0,
            "rated": 0,
            "samples": 0,
            "last_activity_ms": int(created),
        }
    grouped = (
        select(
            StudySession.participant_id,
            func.count(StudySession.id),
            func.count(StudySession.finished_ms),
            func.max(StudySession.created_ms),
            func.max(StudySession.finished_ms),
        ).group_by(StudySession.participant_id),
        select(
            StudySession.participant_id,
            func.count(Task.id),
            func.count(Task.preference),
            func.max(Task.shown_ms),
            func.max(Task.rated_ms),
        )
        .join(Task, Task.session_id == StudySession.id)
        .group_by(StudySession.participant_id),
        select(
            StudySession.participant_id,
            func.sum(StoredBatch.n_samples),
            func.max(StoredBatch.received_ms),
        )
        .join(StoredBatch, StoredBatch.session_id == StudySession.id)
        .group_by(StudySession.participant_id),
    )
    names = (("sessions", "finished"), ("tasks", "rated"), ("samples",))
    for query, keys in zip(grouped, names, strict=True):
        for result in db.execute(query):
            row, values = rows[str(result[0])], list(result[1:])
            for key, value in zip(keys, values, strict=False):
                row[key] = int(value or 0)
            times = [int(t) for t in values[len(keys) :] if t is not None]
            row["last_activity_ms"] = max([row["last_activity_ms"], *times])
    ordered = sorted(rows.values(), key=lambda row: (-row["last_activity_ms"], row["id"]))
    for row in ordered:
        row["last_activity"] = _iso(row["last_activity_ms"])
    return ordered[:limit] if limit else ordered


def _iso(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds")


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"study database {summary['database']}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    sessions, tasks = summary["sessions"], summary["tasks"]
    calibrations, samples = summary["calibrations"], summary["samples"]
    table.add_row("participants", f"{summary['participants']:,}")
    table.add_row("sessions", f"{sessions['total']:,} ({sessions['finished']:,} finished)")
    table.add_row("tasks", f"{tasks['total']:,} ({tasks['rated']:,} rated)")
    table.add_row("calibrations", f"{calibrations['total']:,} ({calibrations['passed']:,} passed)")
    table.add_row("batches", f"{summary['batches']:,}")
    layouts = summary["layouts"]
    table.add_row("layouts", f"{layouts['total']:,} ({layouts['word_boxes']:,} word boxes)")
    table.add_row("samples", f"{samples['total']:,}")
    for kind, n in samples["by_kind"].items():
        table.add_row(f"  {kind}", f"{n:,}")
    table.add_row("last activity", summary["last_activity"] or "never")
    console.print(table)
    listed = summary["recent_participants"]
    if not listed:
        return
    people = Table(
        title="participants, most recently active first",
        caption="sessions: finished/all; tasks: rated/all; times in UTC",
    )
    # The full id: it is what `tacitly collect delete --participant` takes.
    people.add_column("id", no_wrap=True, min_width=36)
    people.add_column("outside id")
    for name in ("sessions", "tasks", "samples"):
        people.add_column(name, justify="right")
    people.add_column("last activity", no_wrap=True)
    for row in listed:
        people.add_row(
            row["id"],
            row["external_id"] or "",
            f"{row['finished']}/{row['sessions']}",
            f"{row['rated']}/{row['tasks']}",
            f"{row['samples']:,}",
            row["last_activity"].replace("T", " ")[:16],
        )
    console.print(people)


# --------------------------------------------------------------------------------------------
# delete


@collect_app.command("delete")
def delete_command(
    participant: Annotated[
        str, typer.Option(help="Participant id or outside id (see `tacitly collect status`).")
    ],
    db: _Db = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one participant and everything recorded of them."""
    store = _open_store(db)
    try:
        if not yes:
            typer.confirm(
                f"Erase participant {participant!r} and all their sessions, tasks and samples?",
                abort=True,
            )
        counts = store.delete_participant(participant)
    finally:
        store.close()
    erased = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    console.print(f"erased participant {participant!r}: {erased}", highlight=False)


# --------------------------------------------------------------------------------------------
# shared


def _require_collect_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as error:
        raise InputError(
            f"the collection app needs the collect extra ({error.name} is missing)",
            expected="pip install 'tacitly[collect]'",
        ) from None


def _open_store(db: str | None) -> Store:
    """The study database, which must exist already: a read must not create an empty one."""
    _require_collect_extra()
    from sqlalchemy.engine import make_url

    from tacitly.collect.store import Store, database_url

    url = database_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not Path(path).is_file():
            raise InputError(
                "no such database",
                source=path,
                field="--db",
                expected="the database `tacitly collect serve` wrote (default: study.db here)",
            )
    return Store(url)
