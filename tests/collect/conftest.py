"""Fixtures of the collection app's tests: real databases and a real server process.

- ``postgres_server``: a throwaway PostgreSQL cluster from Debian's packages on loopback;
- ``postgres_database`` / ``sqlite_database``: a fresh, empty database per test;
- ``database``: the same test on SQLite and on PostgreSQL;
- ``live_server``: the study server as a subprocess (uvicorn), which a test may kill and restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

POSTGRES_ROOT = Path("/usr/lib/postgresql")
SERVER_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout), if any."""
    found = sorted(
        (path for path in POSTGRES_ROOT.glob("*/bin") if (path / "initdb").is_file()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def ensure_postgres_bin() -> Path:
    """PostgreSQL's binaries, installed with apt when missing and we are root.

    Raises
    ------
    RuntimeError
        Naming why no PostgreSQL is available.
    """
    found = postgres_bin()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            f"PostgreSQL is not installed (no {POSTGRES_ROOT}/*/bin/initdb) and installing it "
            "needs root: apt-get install -y postgresql"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    found = postgres_bin()
    if found is None:
        raise RuntimeError(f"apt-get installed postgresql but {POSTGRES_ROOT}/*/bin is empty")
    return found


class PostgresCluster:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 at a free port.

    initdb refuses to run as root, so as root every server command runs as the ``postgres``
    system user (which the Debian package creates) in a folder that user owns.

    Parameters
    ----------
    bin_dir:
        PostgreSQL's ``bin`` folder (default: None, found or installed).
    """

    def __init__(self, *, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else ensure_postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="tacitly-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        full = [str(self.bin_dir / command[0]), *command[1:]]
        if self.as_postgres:
            full = ["runuser", "-u", "postgres", "--", *full]
        done = subprocess.run(full, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(full)} failed ({done.returncode}): {done.stderr[-2000:]}\n{log}"
            )

    def start(self) -> str:
        """Create and start the cluster; returns the admin URL (trust authentication)."""
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self.admin_url

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def execute_autocommit(admin_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole test session; yields its admin URL."""
    try:
        cluster = PostgresCluster()
    except RuntimeError as error:
        pytest.skip(f"no PostgreSQL: {error}")
    try:
        url = cluster.start()
    except RuntimeError:
        cluster.stop()
        raise
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A new empty PostgreSQL database: ``postgresql://postgres@127.0.0.1:<port>/<name>``."""
    name = f"tacitly_{uuid.uuid4().hex[:12]}"
    execute_autocommit(postgres_server, f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        # FORCE: a test that failed may still hold connections in an engine's pool.
        execute_autocommit(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    """A SQLite file in the test's own folder (created by the store's migrations)."""
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """The test once on SQLite and once on PostgreSQL (started only when needed)."""
    name = "sqlite_database" if request.param == "sqlite" else "postgres_database"
    return str(request.getfixturevalue(name))


class LiveServer:
    """The study server as a real process (``tacitly.collect.runner.serve``) on loopback.

    ``kill9`` kills it (and its uvicorn workers) with SIGKILL, as a crash would;
    ``restart`` starts it again on the same database and port.
    """

    def __init__(self, *, db: str, study: Path | None, workers: int, port: int, log: Path) -> None:
        self.db = db
        self.study = study
        self.workers = workers
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        study = repr(str(self.study)) if self.study is not None else "None"
        code = (
            "from tacitly.collect.runner import serve; "
            f"serve(study={study}, db={self.db!r}, port={self.port}, workers={self.workers})"
        )
        return [sys.executable, "-c", code]

    def start(self) -> LiveServer:
        with self.log.open("ab") as log:
            # A session of its own, so that kill9 reaches the uvicorn workers too.
            self.process = subprocess.Popen(
                self._command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                if (
                    httpx.get(f"{self.url}/api/health", timeout=1.0, trust_env=False).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill9()
        raise RuntimeError(
            f"server not healthy after {SERVER_START_TIMEOUT_S} s:\n{self.log_text()}"
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the server's whole process group and reap it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def restart(self) -> LiveServer:
        """Kill (if running) and start again on the same database and port."""
        self.kill9()
        return self.start()

    def stop(self) -> None:
        """Ask politely (SIGTERM), then SIGKILL what is left."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill9()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``live_server(db_url, study_yaml_path=None, workers=1)`` starts the server
    and returns its :class:`LiveServer` (``.url``, ``.process``, ``.kill9()``,
    ``.restart()``); every server started is stopped after the test."""
    started: list[LiveServer] = []

    def start(
        db_url: str, study_yaml_path: str | Path | None = None, workers: int = 1
    ) -> LiveServer:
        server = LiveServer(
            db=db_url,
            study=Path(study_yaml_path) if study_yaml_path is not None else None,
            workers=workers,
            port=free_port(),
            log=tmp_path / f"server-{len(started)}.log",
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
