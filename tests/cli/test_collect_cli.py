"""``tacitly collect``: serve's options, status counts, delete, export dispatch.

The store is a SQLite file with rows written through :class:`~tacitly.collect.store.Store`; the
expected counts below are worked out by hand from :func:`filled_db`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tacitly.cli import collect as cli_collect
from tacitly.cli.app import app
from tacitly.collect.protocol import Batch, Layout, Rating, Sample, WordBox
from tacitly.collect.store import Store
from tacitly.errors import InputError

runner = CliRunner(env={"COLUMNS": "120", "TERMINAL_WIDTH": "120"})

T0 = 1_764_000_000_000


def _samples(*kinds: str) -> list[Sample]:
    return [
        Sample(kind=kind, t=10.0 * i, epoch_ms=T0 + 10 * i)  # type: ignore[arg-type]
        for i, kind in enumerate(kinds)
    ]


def _batch(store: Store, session: str, seq: int, task: int, *kinds: str) -> None:
    outcome = store.add_batch(session, Batch(seq=seq, task_id=task, samples=_samples(*kinds)))
    assert outcome.status == "stored"


@pytest.fixture
def filled_db(tmp_path: Path) -> Path:
    """alice: a finished session (2 tasks, 1 rated; 2 batches: 3 mouse + 1 click, 2 gaze;
    a passed calibration) and an open one (1 unrated task; 1 scroll).
    bob: 1 rated task, 2 mouse, a failed calibration. A third participant did nothing."""
    path = tmp_path / "study.db"
    store = Store(path)
    rating = Rating(likert_1=4, likert_2=2, preference=1)
    first, _, _ = store.create_session(participant="alice")
    t1 = store.add_task(first, question="Q1?", responses=("a", "b")).id
    t2 = store.add_task(first, question="Q2?", responses=("c", "d")).id
    store.rate_task(first, t1, rating)
    _batch(store, first, 0, t1, "mouse", "mouse", "click", "mouse")
    _batch(store, first, 1, t2, "gaze", "gaze")
    store.add_calibration(first, precision=0.8, points=9, threshold=0.7)
    store.finish_session(first)
    second, _, _ = store.create_session(participant="alice")
    t3 = store.add_task(second, question="Q1?", responses=("a", "b")).id
    _batch(store, second, 0, t3, "scroll")
    bob, _, _ = store.create_session(participant="bob")
    t4 = store.add_task(bob, question="Q1?", responses=("a", "b")).id
    store.rate_task(bob, t4, rating)
    _batch(store, bob, 0, t4, "mouse", "mouse")
    store.add_calibration(bob, precision=0.5, points=9, threshold=0.7)
    # bob's left answer "a": one layout of one word box.
    word = WordBox(index=0, text="a", char_start=0, char_end=1, left=1, top=2, width=8, height=16)
    store.add_layout(bob, t4, Layout(response=1, epoch_ms=T0, width=300, height=200, words=[word]))
    store.create_session(participant=None)
    store.close()
    return path


def _status(db: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["collect", "status", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


# ------------------------------------------------------------------------------------------
# status


def test_status_counts_every_kind_of_row(filled_db: Path) -> None:
    summary = _status(filled_db)
    assert summary["participants"] == 3
    assert summary["sessions"] == {"total": 4, "finished": 1, "unfinished": 3}
    assert summary["tasks"] == {"total": 4, "rated": 2, "unrated": 2}
    assert summary["calibrations"] == {"total": 2, "passed": 1}
    assert summary["batches"] == 4
    assert summary["layouts"] == {"total": 1, "word_boxes": 1}
    assert summary["samples"] == {
        "total": 9,
        "by_kind": {"click": 1, "gaze": 2, "mouse": 5, "scroll": 1},
    }
    assert summary["last_activity_ms"] >= T0
    assert summary["last_activity"].endswith("+00:00")


def test_status_lists_participants_with_their_own_counts(filled_db: Path) -> None:
    listed = {row["external_id"]: row for row in _status(filled_db)["recent_participants"]}
    assert set(listed) == {"alice", "bob", None}
    alice, bob, nobody = listed["alice"], listed["bob"], listed[None]
    assert (alice["sessions"], alice["finished"], alice["tasks"], alice["rated"]) == (2, 1, 3, 1)
    assert (bob["sessions"], bob["finished"], bob["tasks"], bob["rated"]) == (1, 0, 1, 1)
    assert (alice["samples"], bob["samples"], nobody["samples"]) == (7, 2, 0)
    assert (nobody["sessions"], nobody["tasks"]) == (1, 0)


def test_status_recent_limits_the_list(filled_db: Path) -> None:
    result = runner.invoke(
        app, ["collect", "status", "--db", str(filled_db), "--json", "--recent", "1"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["recent_participants"]) == 1


def test_status_table_shows_the_counts(filled_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    monkeypatch.setattr(cli_collect, "console", Console(width=160))
    result = runner.invoke(app, ["collect", "status", "--db", str(filled_db)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "participants │ 3" in text
    assert "sessions │ 4 (1 finished)" in text
    assert "tasks │ 4 (2 rated)" in text
    assert "mouse │ 5" in text
    assert "alice" in text and "bob" in text


def test_status_of_an_empty_database(tmp_path: Path) -> None:
    Store(tmp_path / "empty.db").close()
    summary = _status(tmp_path / "empty.db")
    assert summary["participants"] == 0
    assert summary["samples"] == {"total": 0, "by_kind": {}}
    assert summary["last_activity"] is None
    assert summary["recent_participants"] == []


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    result = runner.invoke(app, ["collect", "status", "--db", str(missing)])
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f'{missing}, field "--db": no such database')
    assert not missing.exists()


# ------------------------------------------------------------------------------------------
# delete


def test_delete_with_yes_erases_that_participant_only(filled_db: Path) -> None:
    result = runner.invoke(
        app, ["collect", "delete", "--participant", "alice", "--db", str(filled_db), "--yes"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "erased participant 'alice':" in text
    for count in ("7 samples", "3 batches", "1 calibrations", "3 tasks", "2 sessions"):
        assert count in text
    summary = _status(filled_db)
    assert summary["participants"] == 2
    assert summary["sessions"]["total"] == 2
    assert summary["samples"] == {"total": 2, "by_kind": {"mouse": 2}}
    assert {row["external_id"] for row in summary["recent_participants"]} == {"bob", None}


def test_delete_asks_first(filled_db: Path) -> None:
    args = ["collect", "delete", "--participant", "bob", "--db", str(filled_db)]
    refused = runner.invoke(app, args, input="n\n")
    assert refused.exit_code == 1
    assert "Erase participant 'bob'" in refused.output
    assert _status(filled_db)["participants"] == 3
    agreed = runner.invoke(app, args, input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert _status(filled_db)["participants"] == 2


def test_delete_of_an_unknown_participant_is_an_input_error(filled_db: Path) -> None:
    result = runner.invoke(
        app, ["collect", "delete", "--participant", "carol", "--db", str(filled_db), "--yes"]
    )
    assert isinstance(result.exception, InputError)
    assert "no participant 'carol'" in str(result.exception)
    assert _status(filled_db)["participants"] == 3


# ------------------------------------------------------------------------------------------
# export


@pytest.mark.parametrize("export_format", ["ifllm", "preferences"])
def test_export_dispatches_by_format(
    filled_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export_format: str
) -> None:
    from tacitly.collect import export

    calls: list[tuple[str, str, Path]] = []

    def fake(name: str) -> Any:
        def write(store: Store, path: Path) -> Path:
            calls.append((name, store.url, Path(path)))
            return Path(path)

        return write

    monkeypatch.setattr(export, "export_ifllm", fake("ifllm"))
    monkeypatch.setattr(export, "export_preferences", fake("preferences"))
    output = tmp_path / "out"
    result = runner.invoke(
        app,
        ["collect", "export", "--format", export_format, "-o", str(output), "--db", str(filled_db)],
    )
    assert result.exit_code == 0, result.output
    assert calls == [(export_format, f"sqlite:///{filled_db}", output)]
    assert f"wrote the {export_format} export to {output}" in " ".join(result.output.split())


def test_export_preferences_writes_one_row_per_rated_task(filled_db: Path, tmp_path: Path) -> None:
    output = tmp_path / "preferences.jsonl"
    args = ["collect", "export", "--format", "preferences", "-o", str(output)]
    result = runner.invoke(app, [*args, "--db", str(filled_db)])
    assert result.exit_code == 0, result.output
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2


def test_an_unknown_format_is_a_usage_error(filled_db: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["collect", "export", "--format", "csv", "-o", str(tmp_path / "x"), "--db", str(filled_db)],
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "Invalid value for '--format'" in text
    assert "'csv' is not one of 'ifllm', 'preferences'" in text


# ------------------------------------------------------------------------------------------
# serve


@pytest.fixture
def serve_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from tacitly.collect import runner as collect_runner

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(collect_runner, "serve", lambda **options: calls.append(options))
    return calls


def test_serve_passes_its_options_to_the_runner(
    serve_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text("title: Bread or cake?\ntasks: 2\n", encoding="utf-8")
    db = "postgresql://tacitly:secret@127.0.0.1:5432/study"
    options = ["--db", db, "--host", "0.0.0.0", "--port", "8123", "--workers", "3"]
    result = runner.invoke(app, ["collect", "serve", "--study", str(study), *options])
    assert result.exit_code == 0, result.output
    assert serve_calls == [
        {"study": study, "db": db, "host": "0.0.0.0", "port": 8123, "workers": 3}
    ]
    text = " ".join(result.output.split())
    assert 'serving "Bread or cake?" on 0.0.0.0:8123 with 3 worker(s)' in text
    assert "consent page: http://127.0.0.1:8123/" in text
    assert "secret" not in text


def test_serve_defaults(serve_calls: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["collect", "serve"])
    assert result.exit_code == 0, result.output
    assert serve_calls == [
        {"study": None, "db": None, "host": "127.0.0.1", "port": 8000, "workers": 1}
    ]
    assert "consent page: http://127.0.0.1:8000/" in result.output


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        pytest.param(
            "generator:\n  kind: smollm2\n", "the smollm2 generator answers questions", id="no-q"
        ),
        pytest.param(
            "ask: true\ngenerator:\n  kind: openai\n  url: http://127.0.0.1:1/v1\n  model: m\n"
            "  api_key_env: TACITLY_TEST_UNSET_KEY\n",
            "TACITLY_TEST_UNSET_KEY is not set",
            id="no-key",
        ),
        pytest.param("tasks: 0\n", "greater than or equal to 1", id="bad-field"),
    ],
)
def test_serve_fails_before_starting_on_a_bad_study(
    serve_calls: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    yaml: str,
    message: str,
) -> None:
    monkeypatch.delenv("TACITLY_TEST_UNSET_KEY", raising=False)
    study = tmp_path / "study.yaml"
    study.write_text(yaml, encoding="utf-8")
    result = runner.invoke(app, ["collect", "serve", "--study", str(study)])
    assert isinstance(result.exception, InputError)
    assert message in str(result.exception)
    assert serve_calls == []
