"""Tests of ``tacitly behavior``: features, train, eval (held-out workers), label."""

from __future__ import annotations

import csv
import datetime as dt
import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli_testing import CliCaller
from tacitly.cli.behavior import behavior_app
from tacitly.signals.behavior import build_feature_table, split_by_worker

T0 = dt.datetime(2025, 4, 23, 22, 0, 0, tzinfo=dt.UTC)
HEADER = [
    "query_ID",
    "user_id",
    "task_id",
    "user_query",
    "llm_response_1",
    "llm_response_2",
    "llm_name_1",
    "llm_name_2",
    "likert_1",
    "likert_2",
    "preference",
    "adjustment",
    "query_timestamp",
]
ANSWERS = ["Short.", "A longer answer here.", "Yes, because of physics.", "No idea, sorry."]

cli = CliCaller(behavior_app)


def _write(root: Path, workers: list[str], *, seed: int) -> Path:
    """An IFllm-layout folder: one task of 4 questions per worker; gaze leans to the preferred."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for w, worker in enumerate(workers):
        task = root / "user_behavior" / worker / "5"
        task.mkdir(parents=True)
        files: dict[str, list[str]] = {k: [] for k in ("g1", "g2", "m1", "m2", "abs")}
        for k in range(4):
            qid = 100 * (w + 1) + k
            start = T0 + dt.timedelta(minutes=w, seconds=12 * k)
            left = bool(rng.integers(0, 2))
            rows.append(
                {
                    "query_ID": qid,
                    "user_id": worker,
                    "task_id": 5,
                    "user_query": f"Q{k}?",
                    "llm_response_1": ANSWERS[rng.integers(0, 4)],
                    "llm_response_2": ANSWERS[rng.integers(0, 4)],
                    "preference": "1.0" if left else "2.0",
                    "query_timestamp": start.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            epoch0 = int(start.timestamp() * 1000)
            for i in range(60):
                epoch = epoch0 + 200 * i
                on_left = rng.random() < (0.7 if left else 0.3)
                hit, miss = f"5,5,abc,{i % 6},{i},1,{epoch}", f"-1,-1,,,{i},1,{epoch}"
                files["g1"].append(hit if on_left else miss)
                files["g2"].append(miss if on_left else hit)
                files["m1"].append(miss)
                files["m2"].append(miss)
                files["abs"].append(f"400,300,{i},{epoch}")
        names = {
            "g1": "rel_gaze_one",
            "g2": "rel_gaze_two",
            "m1": "rel_mouse_left",
            "m2": "rel_mouse_right",
            "abs": "abs_mouse",
        }
        for short, name in names.items():
            (task / f"{name}.csv").write_text("\n".join(files[short]) + "\n")
    with (root / "query_logs_table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: row.get(name, "") for name in HEADER})
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ifllm")
    train = _write(base / "train", [f"worker_t{i}" for i in range(14)], seed=1)
    test = _write(base / "test", [f"worker_h{i}" for i in range(8)], seed=2)
    return train, test


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACITLY_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_eval_on_held_out_workers_prints_one_json_object(folders: tuple[Path, Path]) -> None:
    train, test = folders
    output = cli.output("eval", "--train", train, "--test", test, "--model", "lr", "--json")
    result = json.loads(output.strip().splitlines()[-1])
    assert {"accuracy", "auc", "n", "text_only"} <= set(result)
    assert {"accuracy", "auc", "n"} <= set(result["text_only"])
    assert result["n"] == result["text_only"]["n"] == 32
    assert result["accuracy"] > 0.7


def test_eval_refuses_shared_workers(folders: tuple[Path, Path]) -> None:
    train, _ = folders
    error = cli.input_error("eval", "--train", train, "--test", train, "--json")
    assert "appear in both" in str(error)


def test_features_train_and_label(folders: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = folders
    table_file = tmp_path / "features.parquet"
    cli.output("features", train, "-o", table_file)
    assert pl.read_parquet(table_file).height == 56
    model_dir, png = tmp_path / "model", tmp_path / "importance.png"
    cli.output(
        "train",
        table_file,
        "-o",
        model_dir,
        "--model",
        "lgbm",
        "--features",
        "behavior",
        "--plot",
        png,
    )
    assert (model_dir / "config.json").is_file() and png.stat().st_size > 0
    rows_file = tmp_path / "rows.jsonl"
    cli.output("label", test, "-o", rows_file, "--model-dir", model_dir)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(rows) == 32
    assert all(0.5 <= row["weight"] <= 1.0 for row in rows)
    assert {"prompt", "chosen", "rejected", "weight", "meta"} <= set(rows[0])


def test_out_of_fold_labels_without_a_model(folders: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = folders
    rows_file = tmp_path / "oof.jsonl"
    cli.output("label", train, "-o", rows_file, "--model", "lr", "--features", "gaze")
    assert len(rows_file.read_text().splitlines()) == 56


def test_eval_needs_train_and_test_together(folders: tuple[Path, Path]) -> None:
    error = cli.input_error("eval", "--train", folders[0])
    assert "together" in str(error)


def _features(folder: Path) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = build_feature_table(folder)
    return table.sort("query_ID")


def test_split_keeps_each_worker_whole_and_every_feature(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    source = folders[0]
    cli.output("split", source, "-o", tmp_path / "split", "--test-share", "0.25", "--seed", "3")
    train, test = tmp_path / "split" / "train", tmp_path / "split" / "test"
    sides = {
        name: pl.read_csv(path / "query_logs_table.csv")
        for name, path in (("train", train), ("test", test))
    }
    workers = {name: set(log["user_id"].to_list()) for name, log in sides.items()}
    assert not workers["train"] & workers["test"]
    assert workers["train"] | workers["test"] == {f"worker_t{i}" for i in range(14)}
    # 4 questions per worker, target 14 of 56: 3 workers (12) is as close as 4 (16), and a
    # worker moves only when that brings the share strictly closer.
    assert sides["test"].height == 12 and sides["train"].height == 44
    whole = _features(source)
    parts = pl.concat([_features(train), _features(test)]).sort("query_ID")
    assert parts.equals(whole)
    result = json.loads(
        cli.output("eval", "--train", train, "--test", test, "--model", "lr", "--json")
        .strip()
        .splitlines()[-1]
    )
    assert result["n"] == 12


def test_split_reads_the_archive_like_the_folder(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    source = tmp_path / "packed"
    source.mkdir()
    (source / "query_logs_table.csv").write_bytes(
        (folders[0] / "query_logs_table.csv").read_bytes()
    )
    with tarfile.open(source / "user_behavior.tar.gz", "w:gz") as archive:
        archive.add(folders[0] / "user_behavior", arcname="user_behavior")
    from_archive = split_by_worker(source, tmp_path / "a", seed=5)
    from_folder = split_by_worker(folders[0], tmp_path / "b", seed=5)
    assert from_archive.workers == from_folder.workers
    assert (
        from_archive.trace_files
        == from_folder.trace_files
        == {side: 5 * len(from_folder.workers[side]) for side in ("train", "test")}
    )
    assert _features(from_archive.test).equals(_features(from_folder.test))


def test_split_refuses_bad_input(folders: tuple[Path, Path], tmp_path: Path) -> None:
    error = cli.input_error("split", folders[0], "-o", tmp_path / "x", "--test-share", "1")
    assert "test_share" in str(error)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    log = pl.read_csv(folders[0] / "query_logs_table.csv").filter(pl.col("user_id") == "worker_t0")
    log.write_csv(lonely / "query_logs_table.csv")
    assert "at least two workers" in str(cli.input_error("split", lonely, "-o", tmp_path / "y"))
    broken = tmp_path / "broken"
    broken.mkdir()
    lines = (folders[0] / "query_logs_table.csv").read_text().splitlines()
    lines[3] = lines[3] + ",extra"
    (broken / "query_logs_table.csv").write_text("\n".join(lines) + "\n")
    message = str(cli.input_error("split", broken, "-o", tmp_path / "z"))
    assert "row 3" in message and "14 fields" in message and "13 fields" in message


def test_split_never_writes_over_its_source(folders: tuple[Path, Path]) -> None:
    source = folders[0]
    before = (source / "query_logs_table.csv").read_bytes()
    error = cli.input_error("split", source, "-o", source.parent)
    assert "is or contains the folder being split" in str(error)
    assert (source / "query_logs_table.csv").read_bytes() == before


def test_split_keeps_quoted_multiline_fields_of_a_utf16_log(tmp_path: Path) -> None:
    source = tmp_path / "utf16"
    source.mkdir()
    log = pl.DataFrame(
        {
            "query_ID": [1, 2, 3],
            "user_id": ["worker_a", "worker_b", "worker_c"],
            "user_query": ["Why?", 'He said "no", twice', "Ok"],
            "llm_response_1": ["Line one\nline two, with a comma", "x", "y"],
            "llm_response_2": ["Other", "", "z"],
        }
    )
    text = log.write_csv() + "\n"  # a trailing blank line, as some exports end
    (source / "query_logs_table.csv").write_bytes(text.encode("utf-16"))
    result = split_by_worker(source, tmp_path / "out", test_share=0.5, seed=1)
    parts = pl.concat(
        [pl.read_csv(folder / "query_logs_table.csv") for folder in (result.train, result.test)]
    ).sort("query_ID")
    # csv cannot tell a quoted empty field from an empty one: both come back empty (null).
    expected = log.with_columns(pl.col(pl.String).replace("", None))
    assert parts.equals(expected)
    assert parts["llm_response_1"][0] == "Line one\nline two, with a comma"
    assert sum(result.questions.values()) == 2  # worker_b's row has no second answer
