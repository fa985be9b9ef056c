"""The fault test: SIGKILL the server while a client streams, restart it, and check that no
acknowledged sample was lost and the client's retries stored nothing twice (SQLite and
PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tacitly.collect.store import Store

BATCHES = 40
SAMPLES_PER_BATCH = 60  # one second at 60 Hz
PAUSE_S = 0.02
KILL_AFTER = 10  # acknowledged batches before the kill
CLIENT_DEADLINE_S = 40.0
# The stream sends faster than a browser would; the rate limit is not what this test is about.
STUDY_YAML = "title: fault test\nlimits:\n  requests_per_s: 1000\n  burst: 1000\n"


def samples_of(seq: int) -> list[dict[str, Any]]:
    """Batch ``seq``'s 60 Hz gaze samples; ``x`` encodes (seq, idx) so content can be checked."""
    return [
        {
            "kind": "gaze",
            "t": (seq * SAMPLES_PER_BATCH + i) * 1000 / 60,
            "epoch_ms": 1_700_000_000_000 + seq * 1000 + i * 16,
            "x": float(seq * 1000 + i),
            "y": 300.0,
            "response": 2,
            "char_index": i,
            "text_window": "side by side",
            "camera_valid": True,
        }
        for i in range(SAMPLES_PER_BATCH)
    ]


class StreamingClient(threading.Thread):
    """A participant's recorder: batches 0, 1, 2, … each resent (same number, same content)
    until acknowledged; ``acked`` lists the acknowledged numbers in order."""

    def __init__(self, *, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.token = token
        self.acked: list[int] = []
        self.duplicates: list[int] = []
        self.failures = 0
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + CLIENT_DEADLINE_S
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=2.0) as client:
            for seq in range(BATCHES):
                body = {"seq": seq, "task_id": None, "samples": samples_of(seq)}
                if not self._send_until_acked(client, body, deadline):
                    return
                time.sleep(PAUSE_S)

    def _send_until_acked(
        self, client: httpx.Client, body: dict[str, Any], deadline: float
    ) -> bool:
        seq = body["seq"]
        while time.monotonic() < deadline:
            try:
                reply = client.post("/api/batches", json=body)
            except httpx.TransportError:
                self.failures += 1
                time.sleep(0.05)
                continue
            if reply.status_code == 200:
                ack = reply.json()
                if ack["seq"] != seq or ack["next_seq"] != seq + 1:
                    self.error = f"batch {seq}: unexpected acknowledgement {ack}"
                    return False
                self.acked.append(seq)
                if ack["duplicate"]:
                    self.duplicates.append(seq)
                return True
            if reply.status_code >= 500 or reply.status_code == 429:
                self.failures += 1
                time.sleep(float(reply.headers.get("Retry-After", "0.05")))
                continue
            self.error = f"batch {seq}: {reply.status_code} {reply.text}"
            return False
        self.error = f"batch {seq} not acknowledged within {CLIENT_DEADLINE_S} s"
        return False


def wait_for(condition: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def stored_samples(database: str, session_id: str) -> list[dict[str, Any]]:
    store = Store(database, migrate=False)
    try:
        return store.samples(session_id)
    finally:
        store.close()


def assert_acknowledged_are_stored(rows: list[dict[str, Any]], acked: list[int]) -> None:
    keys = {(row["seq"], row["idx"]) for row in rows}
    missing = [(seq, i) for seq in acked for i in range(SAMPLES_PER_BATCH) if (seq, i) not in keys]
    assert missing == []


def test_a_killed_server_loses_no_acknowledged_sample(
    database: str, live_server: Any, tmp_path: Path
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(STUDY_YAML, encoding="utf-8")
    server = live_server(database, study)
    session = httpx.post(f"{server.url}/api/sessions", json={"consent": True}, timeout=5).json()
    client = StreamingClient(url=server.url, token=session["token"])
    client.start()

    wait_for(lambda: len(client.acked) >= KILL_AFTER or not client.is_alive(), timeout=20)
    server.kill9()
    acked_at_kill = list(client.acked)
    assert server.process.returncode == -9
    # Checked while the server is down: an acknowledgement means committed.
    assert_acknowledged_are_stored(stored_samples(database, session["session_id"]), acked_at_kill)

    server.restart()
    client.join(timeout=CLIENT_DEADLINE_S + 5)
    assert client.error is None
    assert not client.is_alive()
    assert KILL_AFTER <= len(acked_at_kill) < BATCHES  # the kill came mid-stream
    assert client.failures >= 1  # and the client felt it
    assert client.acked == list(range(BATCHES))

    rows = stored_samples(database, session["session_id"])
    assert_acknowledged_are_stored(rows, client.acked)
    copies = Counter((row["session_id"], row["seq"], row["idx"]) for row in rows)
    assert [key for key, count in copies.items() if count > 1] == []
    assert len(rows) == BATCHES * SAMPLES_PER_BATCH
    assert sorted({row["seq"] for row in rows}) == list(range(BATCHES))
    assert [row["x"] for row in rows] == [
        float(seq * 1000 + i) for seq in range(BATCHES) for i in range(SAMPLES_PER_BATCH)
    ]
