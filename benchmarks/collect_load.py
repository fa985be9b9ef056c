"""Load test of the collection server: many participants streaming 60 Hz samples at once.

Starts the study server (uvicorn, as ``tacitly collect serve`` does) as a subprocess on loopback,
then N simulated participants each open a session and send one batch of samples per
``--batch-ms`` for ``--duration`` seconds, retrying every failed upload with the same number and
content until it is acknowledged. Afterwards the database is read back: every acknowledged
sample must be there, exactly once.

Prints one JSON line: ``events_per_s``, ``p50_ms``, ``p99_ms``, ``acked``, ``stored``, ``lost``
first (the issue's keys), then the set-up and diagnostics (see benchmarks/README.md).

    .venv/bin/python benchmarks/collect_load.py                       # 200 x 60 s on SQLite
    .venv/bin/python benchmarks/collect_load.py --participants 20 --duration 10
    .venv/bin/python benchmarks/collect_load.py --postgres --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tacitly.collect.store import database_url

# The throwaway PostgreSQL and the server process are started exactly as the tests start them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collect"))
from conftest import LiveServer, PostgresCluster, execute_autocommit, free_port

WORDS = ("the", "model", "answered", "with", "a", "long", "and", "careful", "explanation")
REQUEST_TIMEOUT_S = 30.0
RETRY_PAUSE_S = 0.2


@dataclass
class ClientReport:
    """What one client process saw."""

    acked: list[tuple[str, int, int]] = field(default_factory=list)  # session, seq, samples
    latencies_ms: list[float] = field(default_factory=list)  # first send to acknowledgement
    lags_ms: list[float] = field(default_factory=list)  # how late each batch left its schedule
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    duplicates: int = 0
    gave_up: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    first_send: float = float("inf")
    last_ack: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=200, help="default: 200")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default: 60)")
    parser.add_argument("--hz", type=float, default=60.0, help="samples per second (default: 60)")
    parser.add_argument(
        "--batch-ms", type=int, default=1000, help="upload interval (default: 1000)"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default: 1)")
    parser.add_argument(
        "--db", default=None, help="SQLite path or postgresql:// URL (default: a temporary SQLite)"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL on loopback"
    )
    parser.add_argument(
        "--clients", type=int, default=1, help="client processes sharing the participants"
    )
    args = parser.parse_args(argv)
    if args.postgres and args.db is not None:
        parser.error("--postgres starts its own database; leave out --db")
    return args


# ---------------------------------------------------------------------------- the participants


def make_samples(seq: int, count: int, hz: float, start_epoch_ms: int) -> list[dict[str, Any]]:
    """Pointer samples as the recorder sends them: over an answer, with the character under the
    pointer and the ±10 characters around it."""
    samples = []
    for i in range(count):
        n = seq * count + i
        word = WORDS[n % len(WORDS)]
        samples.append(
            {
                "kind": "mouse",
                "t": round(n * 1000.0 / hz, 3),
                "epoch_ms": start_epoch_ms + int(n * 1000.0 / hz),
                "x": 120.0 + (n * 7) % 500,
                "y": 240.0 + (n // 40) % 300,
                "response": 1 + (n // 120) % 2,
                "x_rel": round(((n * 7) % 500) / 500, 4),
                "y_rel": round(((n // 40) % 300) / 300, 4),
                "char_index": n % 900,
                "text_window": f"{word} careful expl"[:21],
            }
        )
    return samples


async def participant(
    url: str, args: argparse.Namespace, start: float, report: ClientReport
) -> None:
    # A client (and so a connection) per participant, as each browser has its own; one shared
    # pool of hundreds of connections costs httpx more CPU than the requests themselves.
    async with httpx.AsyncClient(
        base_url=url, timeout=REQUEST_TIMEOUT_S, trust_env=False
    ) as client:
        await stream_batches(client, args, start, report)


async def stream_batches(
    client: httpx.AsyncClient, args: argparse.Namespace, start: float, report: ClientReport
) -> None:
    reply = await post_until_done(client, "/api/sessions", {"consent": True}, {}, report)
    if reply is None:
        return
    session = reply.json()
    headers = {"Authorization": f"Bearer {session['token']}"}
    per_batch = max(1, round(args.hz * args.batch_ms / 1000))
    batches = int(args.duration * 1000 // args.batch_ms)
    interval = args.batch_ms / 1000
    epoch_ms = int(time.time() * 1000)
    for seq in range(batches):
        due = start + seq * interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        sent = time.monotonic()
        report.lags_ms.append((sent - due) * 1000)
        report.first_send = min(report.first_send, sent)
        samples = make_samples(seq, per_batch, args.hz, epoch_ms)
        body = {"seq": seq, "task_id": None, "samples": samples}
        ack = await post_until_done(client, "/api/batches", body, headers, report)
        if ack is None:
            return
        now = time.monotonic()
        report.last_ack = max(report.last_ack, now)
        report.latencies_ms.append((now - sent) * 1000)
        report.acked.append((session["session_id"], seq, per_batch))
        report.duplicates += bool(ack.json()["duplicate"])


async def post_until_done(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    report: ClientReport,
) -> httpx.Response | None:
    """POST until a 200, resending the same body after network errors, 5xx and 429."""
    content = json.dumps(body, separators=(",", ":")).encode()
    headers = {**headers, "Content-Type": "application/json"}
    for attempt in range(50):
        if attempt:
            report.retries += 1
            await asyncio.sleep(RETRY_PAUSE_S)
        try:
            reply = await client.post(path, content=content, headers=headers)
        except httpx.TransportError as error:
            count_error(report, type(error).__name__)
            continue
        if reply.status_code == 200:
            return reply
        count_error(report, str(reply.status_code))
        if reply.status_code < 500 and reply.status_code != 429:
            break  # the server refused the content itself; resending cannot help
    report.gave_up += 1
    return None


def count_error(report: ClientReport, kind: str) -> None:
    report.errors[kind] = report.errors.get(kind, 0) + 1


async def run_participants(
    url: str, args: argparse.Namespace, count: int, start_at: float
) -> ClientReport:
    report = ClientReport()
    # Every client process starts its participants at the same wall-clock moment; their
    # batches are spread over the first interval, as real participants' would be.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.monotonic()
    cpu = time.process_time()
    offsets = [args.batch_ms / 1000 * i / count for i in range(count)]
    await asyncio.gather(*(participant(url, args, start + offset, report) for offset in offsets))
    report.cpu_s = time.process_time() - cpu
    report.wall_s = time.monotonic() - start
    # Monotonic clocks are per process: send times relative to wall time instead.
    shift = time.time() - time.monotonic()
    report.first_send += shift
    report.last_ack += shift
    return report


def client_process(
    url: str, args: argparse.Namespace, count: int, start_at: float
) -> dict[str, Any]:
    return asdict(asyncio.run(run_participants(url, args, count, start_at)))


# ---------------------------------------------------------------------------- the server side


def server_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every process in the server's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[2] is the process group
            total += int(fields[11]) + int(fields[12])
    return total / tick


def read_back(url: str, acked: list[tuple[str, int, int]]) -> dict[str, int]:
    """Stored samples, acknowledged samples missing, and (session, seq, idx) stored twice."""
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as connection:
            per_batch = {
                (row[0], row[1]): row[2]
                for row in connection.execute(
                    text("SELECT session_id, seq, count(*) FROM samples GROUP BY session_id, seq")
                )
            }
            distinct = connection.execute(
                text("SELECT count(*) FROM (SELECT DISTINCT session_id, seq, idx FROM samples) d")
            ).scalar_one()
    finally:
        engine.dispose()
    stored = sum(per_batch.values())
    lost = sum(max(0, n - per_batch.get((session, seq), 0)) for session, seq, n in acked)
    return {"stored": stored, "lost": lost, "duplicated": stored - int(distinct)}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "acked": [],
        "latencies_ms": [],
        "lags_ms": [],
        "errors": {},
        "retries": 0,
        "duplicates": 0,
        "gave_up": 0,
    }
    for report in reports:
        for key in ("acked", "latencies_ms", "lags_ms"):
            merged[key].extend(report[key])
        for key in ("retries", "duplicates", "gave_up"):
            merged[key] += report[key]
        for kind, count in report["errors"].items():
            merged["errors"][kind] = merged["errors"].get(kind, 0) + count
    merged["first_send"] = min(report["first_send"] for report in reports)
    merged["last_ack"] = max(report["last_ack"] for report in reports)
    merged["client_cpu_share"] = max(report["cpu_s"] / report["wall_s"] for report in reports)
    return merged


def run(args: argparse.Namespace, db: str, log_dir: Path) -> dict[str, Any]:
    server = LiveServer(
        db=db, study=None, workers=args.workers, port=free_port(), log=log_dir / "server.log"
    ).start()
    try:
        shares = [
            args.participants // args.clients + (i < args.participants % args.clients)
            for i in range(args.clients)
        ]
        start_at = time.time() + 1.0 + 0.5 * args.clients  # time for client processes to start
        cpu_before = server_cpu_s(server.process.pid)  # type: ignore[union-attr]
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.clients) as pool:
            reports = pool.starmap(
                client_process, [(server.url, args, n, start_at) for n in shares if n]
            )
        server_cpu = server_cpu_s(server.process.pid) - cpu_before  # type: ignore[union-attr]
    finally:
        server.stop()
    merged = merge(reports)
    back = read_back(db, merged["acked"])
    acked = sum(n for _session, _seq, n in merged["acked"])
    span = max(1e-9, merged["last_ack"] - merged["first_send"])
    return {
        "events_per_s": round(acked / span, 1),
        "p50_ms": round(percentile(merged["latencies_ms"], 0.50), 2),
        "p99_ms": round(percentile(merged["latencies_ms"], 0.99), 2),
        "acked": acked,
        "stored": back["stored"],
        "lost": back["lost"],
        "participants": args.participants,
        "duration_s": args.duration,
        "batches": len(merged["acked"]),
        "errors": sum(merged["errors"].values()),
        "retries": merged["retries"],
        "db": "postgresql" if db.startswith("postgresql") else "sqlite",
        "workers": args.workers,
        "hz": args.hz,
        "batch_ms": args.batch_ms,
        "clients": args.clients,
        "duplicated": back["duplicated"],
        "duplicate_acks": merged["duplicates"],
        "gave_up": merged["gave_up"],
        "error_kinds": merged["errors"],
        "send_lag_p99_ms": round(percentile(merged["lags_ms"], 0.99), 2),
        "client_cpu_share": round(merged["client_cpu_share"], 3),
        "server_cpu_share": round(server_cpu / span, 3),
        "wall_s": round(span, 2),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tacitly-load-") as folder:
        work = Path(folder)
        cluster = None
        if args.postgres:
            cluster = PostgresCluster()
            admin = cluster.start()
            name = f"load_{uuid.uuid4().hex[:8]}"
            execute_autocommit(admin, f'CREATE DATABASE "{name}"')
            db = admin.rsplit("/", 1)[0] + f"/{name}"
        else:
            db = args.db if args.db is not None else str(work / "load.db")
        try:
            result = run(args, db, work)
        finally:
            if cluster is not None:
                cluster.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
