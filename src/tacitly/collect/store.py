"""The study's database: participants, sessions, tasks, numbered batches and their samples.

SQLite by default (WAL, ``synchronous=FULL``, so a commit survives a crash of the process or
the machine), PostgreSQL through a ``postgresql://`` URL; the schema comes from the Alembic
migrations in ``tacitly/collect/migrations``, never from ``create_all``, so that a deployed
database can be upgraded in place.

A batch is stored with its samples in one transaction, keyed by ``(session_id, seq)`` and a
digest of its content, which makes uploads idempotent: a retry of a stored batch is answered
from the key without storing anything twice, and a different batch under a used number is
refused.

Word boxes: each answer's layout (``Range.getClientRects()`` per word, measured in the browser)
is stored as a numbered version per task and answer in ``layouts`` (when it was measured, the
answer box's size, a digest of the boxes) with one ``word_boxes`` row per rectangle (a word
wrapped over two lines has two rows with the same ``index``). A resize that moves the words
adds a version and keeps the earlier ones; a layout equal to the latest version (a retry, a
reload) stores nothing.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tacitly.collect import protocol
from tacitly.collect.protocol import Batch, Layout, Rating
from tacitly.errors import InputError

__all__ = [
    "Base",
    "BatchOutcome",
    "LayoutOutcome",
    "Store",
    "database_url",
    "token_digest",
]

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


class Participant(Base):
    __tablename__ = "participants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class StudySession(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    participant_id: Mapped[str] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    screen_width: Mapped[int | None] = mapped_column(Integer)
    screen_height: Mapped[int | None] = mapped_column(Integer)
    calibration_precision: Mapped[float | None] = mapped_column(Float)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    response_1: Mapped[str] = mapped_column(Text)
    response_2: Mapped[str] = mapped_column(Text)
    source_1: Mapped[str | None] = mapped_column(String(200))
    source_2: Mapped[str | None] = mapped_column(String(200))
    shown_ms: Mapped[int] = mapped_column(BigInteger)
    likert_1: Mapped[int | None] = mapped_column(Integer)
    likert_2: Mapped[int | None] = mapped_column(Integer)
    preference: Mapped[int | None] = mapped_column(Integer)
    rated_ms: Mapped[int | None] = mapped_column(BigInteger)


class Calibration(Base):
    __tablename__ = "calibrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    precision: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class StoredBatch(Base):
    __tablename__ = "batches"
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    n_samples: Mapped[int] = mapped_column(Integer)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class StoredSample(Base):
    __tablename__ = "samples"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    idx: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    t: Mapped[float] = mapped_column(Float)
    epoch_ms: Mapped[int] = mapped_column(BigInteger)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    response: Mapped[int] = mapped_column(Integer)
    x_rel: Mapped[float | None] = mapped_column(Float)
    y_rel: Mapped[float | None] = mapped_column(Float)
    char_index: Mapped[int | None] = mapped_column(Integer)
    text_window: Mapped[str | None] = mapped_column(String(64))
    camera_valid: Mapped[bool | None] = mapped_column(Boolean)
    value: Mapped[str | None] = mapped_column(String(200))


class StoredLayout(Base):
    __tablename__ = "layouts"
    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    response: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch_ms: Mapped[int] = mapped_column(BigInteger)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    n_boxes: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))


class WordBox(Base):
    __tablename__ = "word_boxes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["task_id", "response", "version"],
            ["layouts.task_id", "layouts.response", "layouts.version"],
            ondelete="CASCADE",
        ),
    )
    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    response: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    box: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(100))
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    left: Mapped[float] = mapped_column(Float)
    top: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)


# The stored columns are the protocol's fields, in the protocol's order.
WORD_BOX_FIELDS: tuple[str, ...] = tuple(protocol.WordBox.model_fields)
LAYOUT_FIELDS = ("task_id", "response", "version", "epoch_ms", "width", "height", "n_boxes")
SAMPLE_FIELDS: tuple[str, ...] = tuple(protocol.Sample.model_fields)


def database_url(db: str | Path | None) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as it is, a path as SQLite, None as ``study.db``."""
    if db is None:
        return "sqlite:///study.db"
    text = str(db)
    if "://" in text:
        if text.startswith("postgresql://"):
            # psycopg 3 is the driver tacitly installs; plain postgresql:// would ask for psycopg2.
            return "postgresql+psycopg://" + text[len("postgresql://") :]
        return text
    return f"sqlite:///{Path(text)}"


def token_digest(token: str) -> str:
    """Tokens are stored only as their SHA-256, so a copy of the database cannot act as anyone."""
    return hashlib.sha256(token.encode()).hexdigest()


def _json_digest(data: Any) -> str:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def batch_digest(batch: Batch) -> str:
    return _json_digest(batch.model_dump(mode="json"))


def layout_digest(layout: Layout) -> str:
    """The digest of what a layout shows (its boxes and box size), not of when it was measured,
    so that the same layout measured again is recognised."""
    return _json_digest(layout.model_dump(mode="json", exclude={"epoch_ms"}))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to an uploaded batch: ``status`` is "stored", "duplicate", "gap" or
    "conflict"; ``next_seq`` is the number the session expects next."""

    status: str
    stored: int
    next_seq: int


@dataclass(frozen=True)
class LayoutOutcome:
    """What happened to an uploaded layout: stored as ``version`` now (``duplicate`` False), or
    equal to the latest stored ``version`` (``duplicate`` True, nothing stored)."""

    version: int
    boxes: int
    duplicate: bool


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass(frozen=True)
class _PendingBatch:
    session_id: str
    batch: Batch
    digest: str
    future: Future[BatchOutcome]


class _GroupWriter:
    """One thread that writes every queued batch in one transaction per round."""

    MAX_GROUP = 512

    def __init__(self, write: Callable[[Sequence[_PendingBatch]], None]) -> None:
        self.write = write
        self.queue: queue.SimpleQueue[_PendingBatch | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="tacitly-batch-writer", daemon=True)
        self.thread.start()

    def submit(self, session_id: str, batch: Batch, digest: str) -> BatchOutcome:
        future: Future[BatchOutcome] = Future()
        self.queue.put(_PendingBatch(session_id, batch, digest, future))
        return future.result()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.MAX_GROUP:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.write(group)
                    return
                group.append(item)
            self.write(group)


class Store:
    """The study database behind one engine.

    Parameters
    ----------
    url:
        SQLAlchemy URL, or a path for SQLite (default: None, ``study.db`` here).
    migrate:
        Bring the schema to the newest migration first (default: True).

    Examples
    --------
    >>> store = Store("sqlite:///:memory:")  # doctest: +SKIP
    >>> session = store.create_session(participant=None)  # doctest: +SKIP
    """

    def __init__(self, url: str | Path | None = None, *, migrate: bool = True) -> None:
        self.url = database_url(url)
        self.engine: Engine = _engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # SQLite has one writer; queuing writers here is faster than its busy-wait.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if migrate:
            upgrade(self.engine)
        self._group = _GroupWriter(self._add_many) if self.is_sqlite else None

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None
        self.engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with Session(self.engine) as session, session.begin():
                yield session
        finally:
            if lock is not None:
                lock.release()

    # ------------------------------------------------------------------ sessions
    def create_session(
        self,
        *,
        participant: str | None,
        user_agent: str | None = None,
        screen: tuple[int | None, int | None] = (None, None),
    ) -> tuple[str, str, str]:
        """A new participant (or the one with this outside id) and session:
        ``(session_id, participant_id, token)``."""
        token = secrets.token_urlsafe(32)
        session_id = str(uuid.uuid4())
        with self._writing() as db:
            participant_id = None
            if participant is not None:
                participant_id = db.scalar(
                    select(Participant.id).where(Participant.external_id == participant)
                )
            if participant_id is None:
                participant_id = str(uuid.uuid4())
                db.add(Participant(id=participant_id, external_id=participant, created_ms=now_ms()))
                db.flush()
            db.add(
                StudySession(
                    id=session_id,
                    participant_id=participant_id,
                    token_digest=token_digest(token),
                    created_ms=now_ms(),
                    user_agent=user_agent,
                    screen_width=screen[0],
                    screen_height=screen[1],
                )
            )
        return session_id, participant_id, token

    def session_for_token(self, token: str) -> str | None:
        with Session(self.engine) as db:
            return db.scalar(
                select(StudySession.id).where(StudySession.token_digest == token_digest(token))
            )

    def finish_session(self, session_id: str) -> None:
        with self._writing() as db:
            db.execute(
                update(StudySession)
                .where(StudySession.id == session_id)
                .values(finished_ms=now_ms())
            )

    def add_calibration(
        self, session_id: str, *, precision: float, points: int, threshold: float
    ) -> bool:
        passed = precision >= threshold
        with self._writing() as db:
            db.add(
                Calibration(
                    session_id=session_id,
                    precision=precision,
                    points=points,
                    passed=passed,
                    created_ms=now_ms(),
                )
            )
            db.execute(
                update(StudySession)
                .where(StudySession.id == session_id)
                .values(calibration_precision=precision)
            )
        return passed

    # ------------------------------------------------------------------ tasks
    def tasks(self, session_id: str) -> list[Task]:
        with Session(self.engine) as db:
            return list(
                db.scalars(
                    select(Task).where(Task.session_id == session_id).order_by(Task.position)
                )
            )

    def task(self, session_id: str, task_id: int) -> Task | None:
        """One task of this session, or None when the session has no such task."""
        with Session(self.engine) as db:
            return db.scalar(select(Task).where(Task.id == task_id, Task.session_id == session_id))

    def add_task(
        self,
        session_id: str,
        *,
        question: str,
        responses: tuple[str, str],
        sources: tuple[str | None, str | None] = (None, None),
    ) -> Task:
        with self._writing() as db:
            position = db.scalar(
                select(func.count()).select_from(Task).where(Task.session_id == session_id)
            )
            task = Task(
                session_id=session_id,
                position=int(position or 0),
                question=question,
                response_1=responses[0],
                response_2=responses[1],
                source_1=sources[0],
                source_2=sources[1],
                shown_ms=now_ms(),
            )
            db.add(task)
            db.flush()
            db.expunge(task)
        return task

    def rate_task(self, session_id: str, task_id: int, rating: Rating) -> bool:
        """Store a rating; False when the task is not this session's."""
        with self._writing() as db:
            result = db.execute(
                update(Task)
                .where(Task.id == task_id, Task.session_id == session_id)
                .values(
                    likert_1=rating.likert_1,
                    likert_2=rating.likert_2,
                    preference=rating.preference,
                    rated_ms=now_ms(),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ word boxes
    def add_layout(self, session_id: str, task_id: int, layout: Layout) -> LayoutOutcome | None:
        """Store an answer's word boxes as the task's next layout version; None when the task is
        not this session's.

        A layout equal to the latest version of the same answer (same boxes and box size,
        whenever measured) is a duplicate: nothing is stored and that version is returned, so
        retries and reloads are harmless. Versions count 1, 2, … per task and answer.
        """
        digest = layout_digest(layout)
        try:
            with self._writing() as db:
                return self._add_layout_in(db, session_id, task_id, layout, digest)
        except IntegrityError:
            # A concurrent copy took the version number first; it is either this layout or a
            # newer one, which the retry below sees.
            with self._writing() as db:
                return self._add_layout_in(db, session_id, task_id, layout, digest)

    def _add_layout_in(
        self, db: Session, session_id: str, task_id: int, layout: Layout, digest: str
    ) -> LayoutOutcome | None:
        owner = db.scalar(select(Task.session_id).where(Task.id == task_id))
        if owner != session_id:
            return None
        latest = db.execute(
            select(StoredLayout.version, StoredLayout.digest, StoredLayout.n_boxes)
            .where(StoredLayout.task_id == task_id, StoredLayout.response == layout.response)
            .order_by(StoredLayout.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.digest == digest:
            return LayoutOutcome(int(latest.version), int(latest.n_boxes), duplicate=True)
        version = 1 if latest is None else int(latest.version) + 1
        key = {"task_id": task_id, "response": layout.response, "version": version}
        db.execute(
            insert(_table(StoredLayout)),
            [
                {
                    **key,
                    "epoch_ms": layout.epoch_ms,
                    "received_ms": now_ms(),
                    "width": layout.width,
                    "height": layout.height,
                    "n_boxes": len(layout.words),
                    "digest": digest,
                }
            ],
        )
        if layout.words:
            rows = [
                {**key, "box": box, **word.model_dump()} for box, word in enumerate(layout.words)
            ]
            db.execute(insert(_table(WordBox)), rows)
        return LayoutOutcome(version, len(layout.words), duplicate=False)

    def layouts(self, task_id: int) -> list[dict[str, Any]]:
        """Every stored layout version of a task: ``task_id``, ``response``, ``version``,
        ``epoch_ms``, ``width``, ``height``, ``n_boxes``, by answer and version."""
        query = (
            select(StoredLayout)
            .where(StoredLayout.task_id == task_id)
            .order_by(StoredLayout.response, StoredLayout.version)
        )
        with Session(self.engine) as db:
            return [
                {name: getattr(row, name) for name in LAYOUT_FIELDS} for row in db.scalars(query)
            ]

    def word_boxes(self, task_id: int, *, latest: bool = True) -> list[dict[str, Any]]:
        """A task's word boxes as dicts (``response``, ``version``, ``box`` and the fields of
        :class:`~tacitly.collect.protocol.WordBox`), by answer, version and box.

        Parameters
        ----------
        task_id:
            The task.
        latest:
            Only each answer's newest version (default: True).
        """
        with Session(self.engine) as db:
            rows = word_box_rows(db, [task_id], latest=latest)
        return [
            {
                "response": row.response,
                "version": row.version,
                "box": row.box,
                **{name: getattr(row, name) for name in WORD_BOX_FIELDS},
            }
            for row in rows
        ]

    # ------------------------------------------------------------------ batches
    def add_batch(self, session_id: str, batch: Batch) -> BatchOutcome:
        """Store a batch and its samples, exactly once; returns only after the commit.

        ``seq`` must be the session's next number: a stored number with the same content is a
        "duplicate" (nothing stored), with other content a "conflict"; a number past the next
        one is a "gap" (nothing stored; the client must send the missing batches first).

        On SQLite, batches arriving together are written by one thread in one transaction
        (group commit): one fsync then covers them all, which is what lets a single SQLite file
        keep up with hundreds of participants. Each caller still waits for that commit.
        """
        digest = batch_digest(batch)
        if self._group is not None:
            return self._group.submit(session_id, batch, digest)
        return self._add_batch_alone(session_id, batch, digest)

    def _add_batch_alone(self, session_id: str, batch: Batch, digest: str) -> BatchOutcome:
        try:
            with self._writing() as db:
                return self._add_in(db, session_id, batch, digest)
        except IntegrityError:
            # A concurrent copy of the same upload won the race for (session, seq).
            with Session(self.engine) as db:
                return self._seen(db, session_id, batch.seq, digest, self._next_in(db, session_id))

    def _add_many(self, items: Sequence[_PendingBatch]) -> None:
        """Write queued batches in one transaction; on any failure, one transaction each."""
        try:
            with self._writing() as db:
                outcomes = [self._add_in(db, i.session_id, i.batch, i.digest) for i in items]
        except Exception:
            for item in items:
                try:
                    item.future.set_result(
                        self._add_batch_alone(item.session_id, item.batch, item.digest)
                    )
                except Exception as error:
                    item.future.set_exception(error)
            return
        for item, outcome in zip(items, outcomes, strict=True):
            item.future.set_result(outcome)

    def _add_in(self, db: Session, session_id: str, batch: Batch, digest: str) -> BatchOutcome:
        next_seq = self._next_in(db, session_id)
        if batch.seq < next_seq:
            return self._seen(db, session_id, batch.seq, digest, next_seq)
        if batch.seq > next_seq:
            return BatchOutcome("gap", 0, next_seq)
        db.execute(
            insert(_table(StoredBatch)),
            [
                {
                    "session_id": session_id,
                    "seq": batch.seq,
                    "digest": digest,
                    "n_samples": len(batch.samples),
                    "received_ms": now_ms(),
                }
            ],
        )
        if batch.samples:
            db.execute(insert(_table(StoredSample)), _sample_rows(session_id, batch))
        return BatchOutcome("stored", len(batch.samples), batch.seq + 1)

    @staticmethod
    def _next_in(db: Session, session_id: str) -> int:
        last = db.scalar(
            select(func.max(StoredBatch.seq)).where(StoredBatch.session_id == session_id)
        )
        return 0 if last is None else int(last) + 1

    @staticmethod
    def _seen(db: Session, session_id: str, seq: int, digest: str, next_seq: int) -> BatchOutcome:
        earlier = db.scalar(
            select(StoredBatch.digest).where(
                StoredBatch.session_id == session_id, StoredBatch.seq == seq
            )
        )
        status = "duplicate" if earlier == digest else "conflict"
        return BatchOutcome(status, 0, next_seq)

    def next_seq(self, session_id: str) -> int:
        with Session(self.engine) as db:
            return self._next_in(db, session_id)

    # ------------------------------------------------------------------ reading back
    def samples(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Stored samples as dicts (with ``session_id``, ``seq``, ``idx``, ``task_id``), in
        upload order."""
        query = select(StoredSample).order_by(
            StoredSample.session_id, StoredSample.seq, StoredSample.idx
        )
        if session_id is not None:
            query = query.where(StoredSample.session_id == session_id)
        with Session(self.engine) as db:
            rows = db.scalars(query)
            return [
                {
                    "session_id": row.session_id,
                    "seq": row.seq,
                    "idx": row.idx,
                    "task_id": row.task_id,
                    **{name: getattr(row, name) for name in SAMPLE_FIELDS},
                }
                for row in rows
            ]

    def count_samples(self) -> int:
        with Session(self.engine) as db:
            return int(db.scalar(select(func.count()).select_from(StoredSample)) or 0)

    def delete_participant(self, participant: str) -> dict[str, int]:
        """Erase a participant (by tacitly id or outside id) and everything recorded of them.

        Raises
        ------
        InputError
            When no participant has that id.
        """
        with self._writing() as db:
            ids = list(
                db.scalars(
                    select(Participant.id).where(
                        (Participant.id == participant) | (Participant.external_id == participant)
                    )
                )
            )
            if not ids:
                raise InputError(
                    f"no participant {participant!r}",
                    field="--participant",
                    expected="a participant id or outside id listed by `tacitly collect status`",
                )
            sessions = list(
                db.scalars(select(StudySession.id).where(StudySession.participant_id.in_(ids)))
            )
            task_ids = select(Task.id).where(Task.session_id.in_(sessions)).scalar_subquery()
            counts = {}
            for boxes in (WordBox, StoredLayout):
                result = db.execute(delete(boxes).where(boxes.task_id.in_(task_ids)))
                counts[boxes.__tablename__] = int(result.rowcount)  # type: ignore[attr-defined]
            for table in (StoredSample, StoredBatch, Calibration, Task):
                result = db.execute(delete(table).where(table.session_id.in_(sessions)))
                counts[table.__tablename__] = int(result.rowcount)  # type: ignore[attr-defined]
            result = db.execute(delete(StudySession).where(StudySession.id.in_(sessions)))
            counts["sessions"] = int(result.rowcount)  # type: ignore[attr-defined]
            result = db.execute(delete(Participant).where(Participant.id.in_(ids)))
            counts["participants"] = int(result.rowcount)  # type: ignore[attr-defined]
        return counts


def word_box_rows(db: Session, task_ids: Sequence[int], *, latest: bool) -> list[WordBox]:
    """The word boxes of ``task_ids`` by task, answer, version and box; with ``latest`` only
    each answer's newest version."""
    query = select(WordBox).where(WordBox.task_id.in_(task_ids))
    if latest:
        newest = (
            select(
                StoredLayout.task_id,
                StoredLayout.response,
                func.max(StoredLayout.version).label("version"),
            )
            .where(StoredLayout.task_id.in_(task_ids))
            .group_by(StoredLayout.task_id, StoredLayout.response)
            .subquery()
        )
        query = query.join(
            newest,
            (WordBox.task_id == newest.c.task_id)
            & (WordBox.response == newest.c.response)
            & (WordBox.version == newest.c.version),
        )
    order = (WordBox.task_id, WordBox.response, WordBox.version, WordBox.box)
    return list(db.scalars(query.order_by(*order)))


def _sample_rows(session_id: str, batch: Batch) -> list[dict[str, Any]]:
    return [
        {
            "session_id": session_id,
            "seq": batch.seq,
            "idx": i,
            "task_id": batch.task_id,
            **sample.model_dump(),
        }
        for i, sample in enumerate(batch.samples)
    ]


def _table(model: type[Base]) -> Table:
    # Core inserts skip the ORM's per-row bookkeeping; samples arrive by the thousand.
    return cast(Table, model.__table__)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (default: "head", the newest)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
