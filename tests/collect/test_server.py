"""The study API through HTTP (FastAPI's TestClient), on SQLite and on PostgreSQL.

Every rejected request is checked twice: by its status and message, and by counting the rows of
every table before and after, so that "rejected" also means "nothing stored".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select

from tacitly.collect.generators import GeneratedPair
from tacitly.collect.protocol import (
    MAX_BATCH_BYTES,
    MAX_LAYOUT_BOXES,
    MAX_LAYOUT_BYTES,
    MAX_SAMPLES_PER_BATCH,
    MAX_WORD_TEXT,
    Layout,
)
from tacitly.collect.server import TEMPLATES, create_app
from tacitly.collect.store import Base, Store
from tacitly.collect.study import LimitsConfig, StudyConfig, default_study

SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class EchoPairs:
    """Answers any question (the demo pairs only know their own questions)."""

    def pair(self, question: str | None, *, index: int) -> GeneratedPair:
        asked = question if question is not None else f"question {index}"
        return GeneratedPair(asked, (f"left answer {index}", f"right answer {index}"))


class WordPairs:
    """Answers made of the word "word", so that a box at offset 5 * i holds "word"."""

    def pair(self, question: str | None, *, index: int) -> GeneratedPair:
        text = " ".join(["word"] * 400)
        return GeneratedPair(question or f"question {index}", (text, text))


def table_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            table.name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def mouse_samples(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``count`` pointer samples 1/60 s apart over the left answer."""
    return [
        {
            "kind": "mouse",
            "t": round((start + i) * 1000 / 60, 3),
            "epoch_ms": 1_700_000_000_000 + (start + i) * 17,
            "x": 100.0 + i,
            "y": 200.0,
            "response": 1,
            "x_rel": 0.25,
            "y_rel": 0.5,
            "char_index": start + i,
            "text_window": "the quick brown",
        }
        for i in range(count)
    ]


def batch(seq: int, count: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "task_id": None,
        "samples": mouse_samples(count, start=seq * count),
        **extra,
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    store = Store(database)
    try:
        yield store
    finally:
        store.close()


def client_for(study: StudyConfig, store: Store, **kwargs: Any) -> TestClient:
    return TestClient(create_app(study, store, **kwargs))


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with client_for(default_study(), store) as client:
        yield client


@pytest.fixture
def word_client(store: Store) -> Iterator[TestClient]:
    with client_for(default_study(), store, source=WordPairs()) as client:
        yield client


@pytest.fixture
def word_token(word_client: TestClient) -> str:
    return str(new_session(word_client)["token"])


def new_session(client: TestClient, **fields: Any) -> dict[str, Any]:
    reply = client.post("/api/sessions", json={"consent": True, **fields})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@pytest.fixture
def token(client: TestClient) -> str:
    return str(new_session(client)["token"])


def assert_rejected(reply: Any, status: int, says: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = reply.json()
    assert says in body["detail"]
    return body


# ---------------------------------------------------------------------------- sessions


def test_a_session_needs_consent(client: TestClient, store: Store) -> None:
    before = table_counts(store)
    reply = client.post("/api/sessions", json={"consent": False, "participant": "p1"})
    assert assert_rejected(reply, 400, "consent is required")["field"] == "consent"
    assert table_counts(store) == before


def test_a_session_is_stored_with_its_participant(client: TestClient, store: Store) -> None:
    first = new_session(client, participant="worker-7", screen_width=1280, screen_height=800)
    again = new_session(client, participant="worker-7")
    assert first["participant_id"] == again["participant_id"]
    assert first["session_id"] != again["session_id"]
    assert first["token"] != again["token"]
    assert first["calibration"] is False
    counts = table_counts(store)
    assert (counts["participants"], counts["sessions"]) == (1, 2)


def test_the_config_names_the_upload_limit(client: TestClient) -> None:
    reply = client.get("/api/config")
    assert reply.status_code == 200
    assert reply.json()["max_batch_bytes"] == MAX_BATCH_BYTES
    assert reply.json()["tasks"] == 3


# ---------------------------------------------------------------------------- tasks


def test_the_task_flow_serves_rates_and_ends(client: TestClient, token: str, store: Store) -> None:
    positions = []
    for likert in (1, 3, 5):
        task = client.get("/api/tasks/next", headers=auth(token)).json()
        assert task["done"] is False
        assert task["total"] == 3
        assert task["question"] and task["response_1"] and task["response_2"]
        again = client.get("/api/tasks/next", headers=auth(token)).json()
        assert again["task_id"] == task["task_id"]  # a reload shows the open task again
        positions.append(task["position"])
        rating = {"likert_1": likert, "likert_2": 6 - likert, "preference": 1}
        reply = client.post(
            f"/api/tasks/{task['task_id']}/rating", json=rating, headers=auth(token)
        )
        assert reply.json() == {"task_id": task["task_id"], "stored": True}
    assert positions == [0, 1, 2]
    end = client.get("/api/tasks/next", headers=auth(token)).json()
    assert (end["done"], end["position"], end["total"]) == (True, 3, 3)
    finish = client.post("/api/finish", headers=auth(token))
    assert finish.json() == {"finished": True, "next_seq": 0}
    tasks = store.tasks(_session_of_token(store, token))
    assert [(t.likert_1, t.likert_2, t.preference) for t in tasks] == [
        (1, 5, 1),
        (3, 3, 1),
        (5, 1, 1),
    ]


def test_a_rating_of_another_sessions_task_is_refused(client: TestClient, store: Store) -> None:
    owner, other = new_session(client)["token"], new_session(client)["token"]
    task = client.get("/api/tasks/next", headers=auth(owner)).json()
    before = table_counts(store)
    rating = {"likert_1": 2, "likert_2": 4, "preference": 2}
    reply = client.post(f"/api/tasks/{task['task_id']}/rating", json=rating, headers=auth(other))
    assert_rejected(reply, 404, f"task {task['task_id']} is not a task of this session")
    bad = {"likert_1": 6, "likert_2": 4, "preference": 2}
    reply = client.post(f"/api/tasks/{task['task_id']}/rating", json=bad, headers=auth(owner))
    assert assert_rejected(reply, 422, "likert_1")["field"] == "likert_1"
    assert table_counts(store) == before
    assert store.tasks(_session_of_token(store, owner))[0].preference is None


def _session_of_token(store: Store, token: str) -> str:
    session_id = store.session_for_token(token)
    assert session_id is not None
    return session_id


# ---------------------------------------------------------------------------- batches


def test_a_batch_is_stored_and_acknowledged(client: TestClient, token: str, store: Store) -> None:
    reply = client.post("/api/batches", json=batch(0, 4), headers=auth(token))
    assert reply.status_code == 200
    assert reply.json() == {"seq": 0, "stored": 4, "duplicate": False, "next_seq": 1}
    rows = store.samples()
    assert [(row["seq"], row["idx"], row["char_index"]) for row in rows] == [
        (0, 0, 0),
        (0, 1, 1),
        (0, 2, 2),
        (0, 3, 3),
    ]
    assert rows[1]["x"] == 101.0
    assert rows[1]["text_window"] == "the quick brown"
    assert rows[1]["session_id"] == _session_of_token(store, token)


def test_a_beacon_batch_with_the_token_in_the_query_is_stored(
    client: TestClient, token: str, store: Store
) -> None:
    reply = client.post(
        f"/api/batches?token={token}",
        content=json.dumps(batch(0, 2)),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert reply.json() == {"seq": 0, "stored": 2, "duplicate": False, "next_seq": 1}
    assert store.count_samples() == 2


def test_a_retried_batch_is_stored_once(client: TestClient, token: str, store: Store) -> None:
    first = client.post("/api/batches", json=batch(0, 5), headers=auth(token))
    again = client.post("/api/batches", json=batch(0, 5), headers=auth(token))
    assert first.json() == {"seq": 0, "stored": 5, "duplicate": False, "next_seq": 1}
    assert again.status_code == 200
    assert again.json() == {"seq": 0, "stored": 0, "duplicate": True, "next_seq": 1}
    assert store.count_samples() == 5
    assert table_counts(store)["batches"] == 1


def test_an_old_retry_after_later_batches_is_a_duplicate(
    client: TestClient, token: str, store: Store
) -> None:
    for seq in range(3):
        client.post("/api/batches", json=batch(seq), headers=auth(token))
    reply = client.post("/api/batches", json=batch(1), headers=auth(token))
    assert reply.json() == {"seq": 1, "stored": 0, "duplicate": True, "next_seq": 3}
    assert store.count_samples() == 9


def test_a_replayed_number_with_other_content_is_refused(
    client: TestClient, token: str, store: Store
) -> None:
    client.post("/api/batches", json=batch(0, 3), headers=auth(token))
    before, samples_before = table_counts(store), store.samples()
    forged = batch(0, 3)
    forged["samples"][0]["x"] = 999.0
    reply = client.post("/api/batches", json=forged, headers=auth(token))
    body = assert_rejected(reply, 409, "batch 0 was already stored with other content")
    assert body["next_seq"] == 1
    assert table_counts(store) == before
    assert store.samples() == samples_before


def test_a_skipped_number_is_refused_with_the_expected_one(
    client: TestClient, token: str, store: Store
) -> None:
    client.post("/api/batches", json=batch(0), headers=auth(token))
    before = table_counts(store)
    reply = client.post("/api/batches", json=batch(2), headers=auth(token))
    body = assert_rejected(reply, 409, "batch 2 skips ahead: batch 1 comes first")
    assert body["next_seq"] == 1
    assert table_counts(store) == before
    assert client.post("/api/batches", json=batch(1), headers=auth(token)).json()["next_seq"] == 2


def test_a_first_batch_must_be_number_zero(client: TestClient, token: str, store: Store) -> None:
    reply = client.post("/api/batches", json=batch(1), headers=auth(token))
    assert assert_rejected(reply, 409, "skips ahead")["next_seq"] == 0
    assert table_counts(store)["batches"] == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"seq": 0, "samples": [', id="truncated"),
        pytest.param(b"seq=0&samples=", id="form-encoded"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_json_is_refused(
    client: TestClient, token: str, store: Store, body: bytes
) -> None:
    client.post("/api/batches", json=batch(0), headers=auth(token))
    before = table_counts(store)
    headers = {**auth(token), "Content-Type": "application/json"}
    reply = client.post("/api/batches", content=body, headers=headers)
    assert_rejected(reply, 400, "malformed JSON")
    assert table_counts(store) == before


def oversized_body() -> bytes:
    """Valid JSON just over the limit: one sample's ``value`` padded with spaces of JSON."""
    body = json.dumps(batch(0, 1)).encode()
    return body[:-1] + b" " * (MAX_BATCH_BYTES + 1 - len(body)) + b"}"


def test_an_oversized_body_is_refused_by_its_declared_length(
    client: TestClient, token: str, store: Store
) -> None:
    body = oversized_body()
    assert len(body) == MAX_BATCH_BYTES + 1
    assert json.loads(body)["seq"] == 0  # refused for its size, not its content
    reply = client.post(
        "/api/batches", content=body, headers={**auth(token), "Content-Type": "application/json"}
    )
    assert_rejected(reply, 413, f"body of {MAX_BATCH_BYTES + 1} bytes; at most {MAX_BATCH_BYTES}")
    assert table_counts(store)["samples"] == 0


def test_an_oversized_streamed_body_is_refused_while_reading(
    client: TestClient, token: str, store: Store
) -> None:
    body = oversized_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    # A generator body goes out chunked, with no Content-Length for the server to check first.
    reply = client.post(
        "/api/batches",
        content=chunks(),
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert_rejected(reply, 413, f"body over {MAX_BATCH_BYTES} bytes")
    assert table_counts(store)["samples"] == 0


def test_too_many_samples_are_refused(client: TestClient, token: str, store: Store) -> None:
    samples = [{"kind": "mouse", "t": 0, "epoch_ms": 0}] * (MAX_SAMPLES_PER_BATCH + 1)
    reply = client.post("/api/batches", json={"seq": 0, "samples": samples}, headers=auth(token))
    body = assert_rejected(reply, 422, "field 'samples'")
    assert body["field"] == "samples"
    assert table_counts(store)["samples"] == 0
    exactly = {"seq": 0, "samples": samples[:MAX_SAMPLES_PER_BATCH]}
    assert client.post("/api/batches", json=exactly, headers=auth(token)).json()["stored"] == (
        MAX_SAMPLES_PER_BATCH
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda b: b["samples"][1].update(video="AAAA"), "samples.1.video", id="video"),
        pytest.param(lambda b: b.update(frame="data:image/png;base64,AA"), "frame", id="frame"),
        pytest.param(
            lambda b: b["samples"][0].update(kind="keystroke"), "samples.0.kind", id="kind"
        ),
        pytest.param(lambda b: b["samples"][2].update(t=-1), "samples.2.t", id="negative-time"),
        pytest.param(
            lambda b: b["samples"][0].update(text_window="w" * 65),
            "samples.0.text_window",
            id="long-window",
        ),
        pytest.param(lambda b: b.update(seq=-1), "seq", id="negative-seq"),
        pytest.param(lambda b: b.pop("samples"), "samples", id="no-samples"),
    ],
)
def test_a_batch_outside_the_schema_is_refused(
    client: TestClient, token: str, store: Store, change: Any, field: str
) -> None:
    bad = batch(0)
    change(bad)
    reply = client.post("/api/batches", json=bad, headers=auth(token))
    body = assert_rejected(reply, 422, f"field {field!r}")
    assert body["field"] == field
    assert table_counts(store)["batches"] == 0
    assert table_counts(store)["samples"] == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="wrong"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer "}, id="empty"),
    ],
)
def test_a_wrong_or_missing_token_is_refused(
    client: TestClient, token: str, store: Store, headers: dict[str, str]
) -> None:
    before = table_counts(store)
    for method, path, body in (
        ("POST", "/api/batches", batch(0)),
        ("GET", "/api/tasks/next", None),
        ("POST", "/api/calibration", {"precision": 0.9, "points": 9}),
        ("POST", "/api/finish", None),
    ):
        reply = client.request(method, path, json=body, headers=headers)
        assert reply.status_code == 401, (path, reply.text)
        assert "token" in reply.json()["detail"]
    assert table_counts(store) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "image/png", ""],
)
def test_a_wrong_content_type_is_refused(
    client: TestClient, token: str, store: Store, content_type: str
) -> None:
    headers = {**auth(token), "Content-Type": content_type}
    reply = client.post("/api/batches", content=json.dumps(batch(0)), headers=headers)
    assert_rejected(reply, 415, "expected application/json")
    assert table_counts(store)["samples"] == 0


def test_too_many_requests_are_refused_with_retry_after(store: Store) -> None:
    study = StudyConfig(limits=LimitsConfig(requests_per_s=0.001, burst=3))
    with client_for(study, store) as client:
        token, other = new_session(client)["token"], new_session(client)["token"]
        replies = [
            client.post("/api/batches", json=batch(seq), headers=auth(token)) for seq in range(4)
        ]
        assert [reply.status_code for reply in replies] == [200, 200, 200, 429]
        assert replies[3].headers["Retry-After"] == "1"
        assert "too many requests" in replies[3].json()["detail"]
        assert [row["seq"] for row in store.samples()] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        # The limit is per session: another participant is not slowed down.
        assert client.post("/api/batches", json=batch(0), headers=auth(other)).status_code == 200


def test_calibration_is_stored_with_its_verdict(client: TestClient, token: str) -> None:
    good = client.post(
        "/api/calibration", json={"precision": 0.8, "points": 9}, headers=auth(token)
    )
    bad = client.post("/api/calibration", json={"precision": 0.5, "points": 9}, headers=auth(token))
    assert good.json() == {"passed": True, "threshold": 0.7}
    assert bad.json() == {"passed": False, "threshold": 0.7}
    out_of_range = client.post(
        "/api/calibration", json={"precision": 1.5, "points": 9}, headers=auth(token)
    )
    assert assert_rejected(out_of_range, 422, "precision")["field"] == "precision"


# ---------------------------------------------------------------------------- typed text


@pytest.fixture
def ask_client(store: Store) -> Iterator[TestClient]:
    with client_for(StudyConfig(ask=True, tasks=2), store, source=EchoPairs()) as client:
        yield client


def test_a_typed_script_is_stored_verbatim_and_served_only_as_json(
    ask_client: TestClient, store: Store
) -> None:
    token = new_session(ask_client)["token"]
    assert ask_client.get("/api/tasks/next", headers=auth(token)).json()["ask"] is True
    reply = ask_client.post("/api/tasks", json={"question": SCRIPT}, headers=auth(token))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.json()["question"] == SCRIPT
    served = ask_client.get("/api/tasks/next", headers=auth(token))
    assert served.headers["content-type"] == "application/json"
    assert served.json()["question"] == SCRIPT
    assert store.tasks(_session_of_token(store, token))[0].question == SCRIPT


def test_a_second_question_waits_for_the_rating(ask_client: TestClient, store: Store) -> None:
    token = new_session(ask_client)["token"]
    first = ask_client.post("/api/tasks", json={"question": "why?"}, headers=auth(token)).json()
    before = table_counts(store)
    reply = ask_client.post("/api/tasks", json={"question": "how?"}, headers=auth(token))
    assert assert_rejected(reply, 409, "rate the open task first")["task_id"] == first["task_id"]
    empty = ask_client.post("/api/tasks", json={"question": ""}, headers=auth(token))
    assert_rejected(empty, 422, "question")
    assert table_counts(store) == before


@pytest.mark.skipif(
    not (TEMPLATES / "task.html").is_file(), reason="the page templates are not written yet"
)
def test_pages_never_carry_participant_text(ask_client: TestClient, store: Store) -> None:
    token = new_session(ask_client)["token"]
    ask_client.post("/api/tasks", json={"question": SCRIPT}, headers=auth(token))
    for path in ("/", "/task", "/debrief"):
        page = ask_client.get(path, params={"token": token})
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]


# ---------------------------------------------------------------------------- word boxes


def word_box(index: int, start: int, text: str = "word", **extra: Any) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "char_start": start,
        "char_end": start + len(text),
        "left": 12.5 * index,
        "top": 4.0,
        "width": 40.0,
        "height": 18.5,
        **extra,
    }


def layout(response: int = 1, count: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "response": response,
        "epoch_ms": 1_700_000_000_000,
        "width": 560.0,
        "height": 288.0,
        "words": [word_box(i, 5 * i) for i in range(count)],
        **extra,
    }


def open_task(client: TestClient, token: str) -> int:
    return int(client.get("/api/tasks/next", headers=auth(token)).json()["task_id"])


def test_a_layout_is_stored_once_and_versioned(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    path = f"/api/tasks/{task_id}/layout"
    first = word_client.post(path, json=layout(1, 3), headers=auth(word_token))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "task_id": task_id,
        "response": 1,
        "version": 1,
        "boxes": 3,
        "duplicate": False,
    }
    retry = word_client.post(
        path, json=layout(1, 3, epoch_ms=1_700_000_000_500), headers=auth(word_token)
    )
    assert retry.json() == {**first.json(), "duplicate": True}
    resized = layout(1, 3, width=480.0)
    assert word_client.post(path, json=resized, headers=auth(word_token)).json()["version"] == 2
    right = word_client.post(path, json=layout(2, 1), headers=auth(word_token)).json()
    assert (right["response"], right["version"], right["boxes"]) == (2, 1, 1)
    counts = table_counts(store)
    assert (counts["layouts"], counts["word_boxes"]) == (3, 7)
    boxes = store.word_boxes(task_id)
    assert [(b["response"], b["version"], b["index"], b["left"]) for b in boxes] == [
        (1, 2, 0, 0.0),
        (1, 2, 1, 12.5),
        (1, 2, 2, 25.0),
        (2, 1, 0, 0.0),
    ]


def test_a_layout_by_beacon_with_the_token_in_the_query_is_stored(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    reply = word_client.post(
        f"/api/tasks/{task_id}/layout?token={word_token}",
        content=json.dumps(layout(2, 2)),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert reply.json()["version"] == 1
    assert table_counts(store)["word_boxes"] == 2


def test_a_layout_needs_a_token_and_a_task_of_the_session(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    other = new_session(word_client)["token"]
    before = table_counts(store)
    path = f"/api/tasks/{task_id}/layout"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        reply = word_client.post(path, json=layout(), headers=headers)
        assert reply.status_code == 401, reply.text
        assert "token" in reply.json()["detail"]
    reply = word_client.post(path, json=layout(), headers=auth(other))
    assert_rejected(reply, 404, f"task {task_id} is not a task of this session")
    missing = word_client.post(
        f"/api/tasks/{task_id + 1000}/layout", json=layout(), headers=auth(word_token)
    )
    assert_rejected(missing, 404, f"task {task_id + 1000} is not a task of this session")
    assert table_counts(store) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda b: b.update(response=3), "response", id="response"),
        pytest.param(lambda b: b.update(image="AAAA"), "image", id="extra-field"),
        pytest.param(lambda b: b["words"][0].update(frame=1), "words.0.frame", id="word-extra"),
        pytest.param(
            lambda b: b["words"][1].update(text="w" * (MAX_WORD_TEXT + 1)),
            "words.1.text",
            id="long-text",
        ),
        pytest.param(lambda b: b["words"][0].update(text=""), "words.0.text", id="empty-text"),
        pytest.param(lambda b: b["words"][0].update(width=-1), "words.0.width", id="negative"),
        pytest.param(lambda b: b["words"][1].update(char_end=5), "words.1", id="empty-range"),
        pytest.param(lambda b: b["words"][1].update(index=-1), "words.1.index", id="index"),
        pytest.param(lambda b: b["words"].reverse(), "", id="out-of-order"),
        pytest.param(lambda b: b.pop("epoch_ms"), "epoch_ms", id="no-time"),
    ],
)
def test_a_layout_outside_the_schema_is_refused(
    word_client: TestClient, word_token: str, store: Store, change: Any, field: str
) -> None:
    task_id = open_task(word_client, word_token)
    bad = layout(1, 3)
    change(bad)
    reply = word_client.post(f"/api/tasks/{task_id}/layout", json=bad, headers=auth(word_token))
    body = assert_rejected(reply, 422, f"field {field!r}")
    assert body["field"] == field
    assert table_counts(store)["layouts"] == 0


def test_a_layout_body_is_not_a_number_in_disguise(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    # Python's JSON reader takes NaN and Infinity; the schema does not.
    for given, bad in (('"left": 0.0', '"left": NaN'), ('"top": 4.0', '"top": -Infinity')):
        body = json.dumps(layout(1, 1)).replace(given, bad)
        assert bad in body
        reply = word_client.post(
            f"/api/tasks/{task_id}/layout",
            content=body,
            headers={**auth(word_token), "Content-Type": "application/json"},
        )
        assert_rejected(reply, 422, "finite number")
    assert table_counts(store)["layouts"] == 0


def test_a_layout_over_its_size_limits_is_refused(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    path = f"/api/tasks/{task_id}/layout"
    many = layout(1, MAX_LAYOUT_BOXES + 1)
    assert len(json.dumps(many)) < MAX_LAYOUT_BYTES  # refused for its count, not its size
    assert assert_rejected(
        word_client.post(path, json=many, headers=auth(word_token)), 422, "'words'"
    )
    body = json.dumps(layout(1, 1)).encode()
    padded = body[:-1] + b" " * (MAX_LAYOUT_BYTES + 1 - len(body)) + b"}"
    reply = word_client.post(
        path, content=padded, headers={**auth(word_token), "Content-Type": "application/json"}
    )
    assert_rejected(reply, 413, f"at most {MAX_LAYOUT_BYTES}")
    assert table_counts(store)["layouts"] == 0


def test_a_box_whose_text_is_not_the_answer_is_refused(
    word_client: TestClient, word_token: str, store: Store
) -> None:
    task_id = open_task(word_client, word_token)
    before = table_counts(store)
    # "word" sits at 0–4 and 5–9; a box claiming "wore" at 5–9 does not match what was shown.
    wrong = layout(1, 2)
    wrong["words"][1] = word_box(1, 5, "wore")
    reply = word_client.post(f"/api/tasks/{task_id}/layout", json=wrong, headers=auth(word_token))
    assert_rejected(reply, 422, "field 'words.1.text': 'wore' is not the answer's characters 5–9")
    assert table_counts(store) == before


def test_the_layout_schema_limits() -> None:
    words = [word_box(i, 5 * i) for i in range(MAX_LAYOUT_BOXES)]
    full = Layout.model_validate(layout(words=words))
    assert len(full.words) == MAX_LAYOUT_BOXES
    longest = Layout.model_validate(layout(words=[word_box(0, 0, "w" * MAX_WORD_TEXT)]))
    assert longest.words[0].char_end == MAX_WORD_TEXT
    # A wrapped word: two boxes with one index, the second starting where the first ends.
    wrapped = [word_box(0, 0, "over"), word_box(0, 4, "flow", top=22.5)]
    assert [w.index for w in Layout.model_validate(layout(words=wrapped)).words] == [0, 0]
    with pytest.raises(ValidationError, match="comes before box 0"):
        Layout.model_validate(layout(words=[word_box(0, 0, "overflow"), word_box(0, 4, "flow")]))
    with pytest.raises(ValidationError, match="at most 20000 items"):
        Layout.model_validate(layout(words=[*words, word_box(MAX_LAYOUT_BOXES, 0)]))
    with pytest.raises(ValidationError, match="char_end 3 is not after char_start 3"):
        Layout.model_validate(layout(words=[word_box(0, 3, "x", char_end=3)]))
    empty = Layout.model_validate(layout(words=[]))
    assert empty.words == []
