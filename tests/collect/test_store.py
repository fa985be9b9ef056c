"""The study database: migrations, durability settings, erasure, exactly-once batches and word
box layouts, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text

from tacitly.collect.protocol import Batch, Layout, Rating
from tacitly.collect.store import (
    Base,
    BatchOutcome,
    LayoutOutcome,
    Store,
    database_url,
    token_digest,
    upgrade,
)
from tacitly.errors import InputError

THREADS = 8


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    store = Store(database)
    try:
        yield store
    finally:
        store.close()


def make_batch(seq: int, count: int, *, x: float = 10.0) -> Batch:
    return Batch.model_validate(
        {
            "seq": seq,
            "task_id": None,
            "samples": [
                {"kind": "gaze", "t": i * 16.667, "epoch_ms": 1_000 + i, "x": x + i, "y": 5.0}
                for i in range(count)
            ],
        }
    )


def make_layout(response: int, words: str, *, epoch_ms: int = 5_000, top: float = 0.0) -> Layout:
    """One box per word of ``words``, 10 px per character, on one line at ``top``."""
    boxes, start = [], 0
    for index, word in enumerate(words.split()):
        start = words.index(word, start)
        boxes.append(
            {
                "index": index,
                "text": word,
                "char_start": start,
                "char_end": start + len(word),
                "left": 10.0 * start,
                "top": top,
                "width": 10.0 * len(word),
                "height": 20.0,
            }
        )
        start += len(word)
    return Layout.model_validate(
        {"response": response, "epoch_ms": epoch_ms, "width": 400, "height": 300, "words": boxes}
    )


def rows_by_table(store: Store, session_ids: list[str]) -> dict[str, int]:
    """Rows of each session table that belong to ``session_ids``."""
    counts = {}
    with store.engine.connect() as connection:
        for name in ("samples", "batches", "calibrations", "tasks"):
            table = Base.metadata.tables[name]
            query = select(func.count()).where(table.c.session_id.in_(session_ids))
            counts[name] = int(connection.scalar(query) or 0)
        tasks = Base.metadata.tables["tasks"]
        task_ids = select(tasks.c.id).where(tasks.c.session_id.in_(session_ids))
        for name in ("layouts", "word_boxes"):
            table = Base.metadata.tables[name]
            query = select(func.count()).where(table.c.task_id.in_(task_ids))
            counts[name] = int(connection.scalar(query) or 0)
        sessions = Base.metadata.tables["sessions"]
        query = select(func.count()).where(sessions.c.id.in_(session_ids))
        counts["sessions"] = int(connection.scalar(query) or 0)
    return counts


def record_participant(store: Store, name: str) -> tuple[str, list[str]]:
    """A participant with two sessions, each with a task, a calibration, two batches and a
    layout of three word boxes."""
    session_ids = []
    participant_id = ""
    for _ in range(2):
        session_id, participant_id, _token = store.create_session(participant=name)
        task = store.add_task(session_id, question="q?", responses=("a", "b"))
        store.rate_task(session_id, task.id, Rating(likert_1=4, likert_2=2, preference=1))
        store.add_calibration(session_id, precision=0.9, points=9, threshold=0.7)
        store.add_batch(session_id, make_batch(0, 3))
        store.add_batch(session_id, make_batch(1, 2))
        store.add_layout(session_id, task.id, make_layout(1, "one two three"))
        session_ids.append(session_id)
    return participant_id, session_ids


def test_the_migrations_create_exactly_the_models_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(database: str) -> None:
    Store(database).close()
    store = Store(database)
    try:
        with store.engine.connect() as connection:
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert [row[0] for row in version] == ["0002"]
    finally:
        store.close()


def test_sqlite_commits_durably_in_wal_mode(sqlite_database: str) -> None:
    store = Store(sqlite_database)
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            # 2 is FULL: the WAL is synced at every commit, so an acknowledged batch survives.
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("given", "url"),
    [
        pytest.param(None, "sqlite:///study.db", id="default"),
        pytest.param("data/s.db", "sqlite:///data/s.db", id="path"),
        pytest.param("postgresql://u@h:5/d", "postgresql+psycopg://u@h:5/d", id="postgres"),
        pytest.param("sqlite:////abs/s.db", "sqlite:////abs/s.db", id="url"),
    ],
)
def test_database_url_chooses_the_driver(given: str | None, url: str) -> None:
    assert database_url(given) == url


def test_tokens_are_stored_only_as_digests(store: Store) -> None:
    session_id, _participant, token = store.create_session(participant=None)
    with store.engine.connect() as connection:
        sessions = Base.metadata.tables["sessions"]
        stored = connection.scalar(select(sessions.c.token_digest))
    assert stored == token_digest(token) != token
    assert len(stored) == 64
    assert store.session_for_token(token) == session_id
    assert store.session_for_token(token + "x") is None


def test_deleting_a_participant_removes_all_their_rows_and_nothing_else(store: Store) -> None:
    gone, gone_sessions = record_participant(store, "p-gone")
    kept, kept_sessions = record_participant(store, "p-kept")
    full = {
        "samples": 10,
        "batches": 4,
        "calibrations": 2,
        "tasks": 2,
        "sessions": 2,
        "layouts": 2,
        "word_boxes": 6,
    }
    assert rows_by_table(store, gone_sessions) == full
    counts = store.delete_participant("p-gone")
    assert counts == {**full, "participants": 1}
    assert rows_by_table(store, gone_sessions) == dict.fromkeys(full, 0)
    assert rows_by_table(store, kept_sessions) == full
    with store.engine.connect() as connection:
        participants = Base.metadata.tables["participants"]
        assert list(connection.scalars(select(participants.c.id))) == [kept]
    assert gone != kept


def test_deleting_by_tacitly_id_works_too(store: Store) -> None:
    participant_id, sessions = record_participant(store, "p-1")
    assert store.delete_participant(participant_id)["samples"] == 10
    assert rows_by_table(store, sessions)["sessions"] == 0


def test_deleting_an_unknown_participant_names_it(store: Store) -> None:
    record_participant(store, "p-1")
    with pytest.raises(InputError, match="no participant 'nobody'"):
        store.delete_participant("nobody")
    assert store.count_samples() == 10


def test_batches_follow_their_numbers(store: Store) -> None:
    session_id, _participant, _token = store.create_session(participant=None)
    assert store.add_batch(session_id, make_batch(0, 3)) == BatchOutcome("stored", 3, 1)
    assert store.add_batch(session_id, make_batch(2, 3)) == BatchOutcome("gap", 0, 1)
    assert store.add_batch(session_id, make_batch(0, 3)) == BatchOutcome("duplicate", 0, 1)
    assert store.add_batch(session_id, make_batch(0, 3, x=11.0)) == BatchOutcome("conflict", 0, 1)
    assert store.add_batch(session_id, make_batch(1, 0)) == BatchOutcome("stored", 0, 2)
    assert store.next_seq(session_id) == 2
    assert [(row["seq"], row["idx"], row["x"]) for row in store.samples(session_id)] == [
        (0, 0, 10.0),
        (0, 1, 11.0),
        (0, 2, 12.0),
    ]


def run_together(count: int, action: Any) -> list[Any]:
    """``action(i)`` in ``count`` threads released at the same moment; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_concurrent_copies_of_a_batch_are_stored_once(store: Store) -> None:
    session_id, _participant, _token = store.create_session(participant=None)
    outcomes = run_together(THREADS, lambda _i: store.add_batch(session_id, make_batch(0, 60)))
    assert sorted(outcome.status for outcome in outcomes) == ["duplicate"] * (THREADS - 1) + [
        "stored"
    ]
    assert {outcome.next_seq for outcome in outcomes} == {1}
    assert store.count_samples() == 60
    assert [row["idx"] for row in store.samples(session_id)] == list(range(60))


def test_concurrent_different_batches_under_one_number_store_one(store: Store) -> None:
    session_id, _participant, _token = store.create_session(participant=None)
    outcomes = run_together(
        THREADS, lambda i: store.add_batch(session_id, make_batch(0, 5, x=100.0 * i))
    )
    statuses = sorted(outcome.status for outcome in outcomes)
    assert statuses == ["conflict"] * (THREADS - 1) + ["stored"]
    winner = next(i for i, outcome in enumerate(outcomes) if outcome.status == "stored")
    assert [row["x"] for row in store.samples(session_id)] == [100.0 * winner + i for i in range(5)]


def test_concurrent_sessions_each_store_their_own_batches(store: Store) -> None:
    sessions = [store.create_session(participant=None)[0] for _ in range(THREADS)]

    def stream(i: int) -> list[str]:
        return [store.add_batch(sessions[i], make_batch(seq, 4)).status for seq in range(5)]

    assert run_together(THREADS, stream) == [["stored"] * 5] * THREADS
    assert store.count_samples() == THREADS * 5 * 4
    for session_id in sessions:
        assert store.next_seq(session_id) == 5


# ---------------------------------------------------------------------------- word boxes


def test_a_layout_round_trips_and_keeps_its_versions(store: Store) -> None:
    session_id, _participant, _token = store.create_session(participant=None)
    task = store.add_task(session_id, question="q?", responses=("aa bbb", "c"))
    first = make_layout(1, "aa bbb", epoch_ms=1_000)
    moved = make_layout(1, "aa bbb", epoch_ms=2_000, top=30.0)
    assert store.add_layout(session_id, task.id, first) == LayoutOutcome(1, 2, duplicate=False)
    # Measured again later but the same boxes (a retry, a reload): stored once.
    again = make_layout(1, "aa bbb", epoch_ms=1_500)
    assert store.add_layout(session_id, task.id, again) == LayoutOutcome(1, 2, duplicate=True)
    assert store.add_layout(session_id, task.id, moved) == LayoutOutcome(2, 2, duplicate=False)
    # Back to the first layout (a resize undone) is a new version: the latest differs.
    back = make_layout(1, "aa bbb", epoch_ms=3_000)
    assert store.add_layout(session_id, task.id, back) == LayoutOutcome(3, 2, duplicate=False)
    assert store.add_layout(session_id, task.id, make_layout(2, "c")) == LayoutOutcome(1, 1, False)
    assert [(r["response"], r["version"], r["epoch_ms"]) for r in store.layouts(task.id)] == [
        (1, 1, 1_000),
        (1, 2, 2_000),
        (1, 3, 3_000),
        (2, 1, 5_000),
    ]
    latest = store.word_boxes(task.id)
    assert latest == [
        {
            "response": 1,
            "version": 3,
            "box": 0,
            "index": 0,
            "text": "aa",
            "char_start": 0,
            "char_end": 2,
            "left": 0.0,
            "top": 0.0,
            "width": 20.0,
            "height": 20.0,
        },
        {
            "response": 1,
            "version": 3,
            "box": 1,
            "index": 1,
            "text": "bbb",
            "char_start": 3,
            "char_end": 6,
            "left": 30.0,
            "top": 0.0,
            "width": 30.0,
            "height": 20.0,
        },
        {
            "response": 2,
            "version": 1,
            "box": 0,
            "index": 0,
            "text": "c",
            "char_start": 0,
            "char_end": 1,
            "left": 0.0,
            "top": 0.0,
            "width": 10.0,
            "height": 20.0,
        },
    ]
    every = store.word_boxes(task.id, latest=False)
    assert [(r["response"], r["version"], r["top"]) for r in every] == [
        (1, 1, 0.0),
        (1, 1, 0.0),
        (1, 2, 30.0),
        (1, 2, 30.0),
        (1, 3, 0.0),
        (1, 3, 0.0),
        (2, 1, 0.0),
    ]


def test_a_layout_of_another_sessions_task_is_refused(store: Store) -> None:
    owner, _participant, _token = store.create_session(participant=None)
    other, _participant, _token = store.create_session(participant=None)
    task = store.add_task(owner, question="q?", responses=("a", "b"))
    assert store.add_layout(other, task.id, make_layout(1, "a")) is None
    assert store.add_layout(owner, task.id + 1, make_layout(1, "a")) is None
    assert store.layouts(task.id) == []
    assert store.word_boxes(task.id) == []


def test_concurrent_copies_of_a_layout_are_stored_once(store: Store) -> None:
    session_id, _participant, _token = store.create_session(participant=None)
    task = store.add_task(session_id, question="q?", responses=("a b c d", "e"))
    layout = make_layout(2, "a b c d")
    outcomes = run_together(THREADS, lambda _i: store.add_layout(session_id, task.id, layout))
    assert sorted(outcome.duplicate for outcome in outcomes) == [False] + [True] * (THREADS - 1)
    assert {outcome.version for outcome in outcomes} == {1}
    assert len(store.word_boxes(task.id, latest=False)) == 4


def test_upgrading_a_filled_0001_database_keeps_its_data(database: str) -> None:
    engine = create_engine(database_url(database))
    try:
        upgrade(engine, revision="0001")
        with engine.begin() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0001"
            for statement in (
                "INSERT INTO participants (id, external_id, created_ms) VALUES ('p', 'w-1', 1)",
                "INSERT INTO sessions (id, participant_id, token_digest, created_ms) "
                f"VALUES ('s', 'p', '{token_digest('tok')}', 2)",
                "INSERT INTO tasks (id, session_id, position, question, response_1, response_2, "
                "shown_ms, likert_1, likert_2, preference) "
                "VALUES (7, 's', 0, 'q?', 'left words', 'right', 3, 4, 2, 1)",
                "INSERT INTO batches (session_id, seq, digest, n_samples, received_ms) "
                "VALUES ('s', 0, 'd', 1, 4)",
                "INSERT INTO samples (session_id, seq, idx, task_id, kind, t, epoch_ms, x, y, "
                "response) VALUES ('s', 0, 0, 7, 'mouse', 1.5, 5, 10, 20, 1)",
            ):
                connection.execute(text(statement))
    finally:
        engine.dispose()
    store = Store(database)
    try:
        with store.engine.connect() as connection:
            version = connection.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == "0002"
        assert store.session_for_token("tok") == "s"
        [task] = store.tasks("s")
        assert (task.id, task.response_1, task.likert_1, task.preference) == (7, "left words", 4, 1)
        assert [(s["kind"], s["t"], s["x"], s["task_id"]) for s in store.samples("s")] == [
            ("mouse", 1.5, 10.0, 7)
        ]
        assert store.next_seq("s") == 1
        # The old task takes word boxes, and erasing its participant erases them too.
        assert store.add_layout("s", 7, make_layout(1, "left words")) == LayoutOutcome(1, 2, False)
        counts = store.delete_participant("w-1")
        assert (counts["word_boxes"], counts["samples"], counts["tasks"]) == (2, 1, 1)
    finally:
        store.close()
