"""Tests of batch scoring (tacitly.scoring): formats, resumption, bad input, and Ray.

The reward is a cheap deterministic fake: the number of characters of the response's last turn
plus a tenth of the number of prompt turns, so every expected score can be read off the input.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tacitly.errors import InputError
from tacitly.scoring import (
    METADATA_KEY,
    read_scores,
    reward_from_spec,
    reward_label,
    score_file,
)


class LengthReward:
    """Characters of the last response turn + 0.1 × prompt turns; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> np.ndarray:
        self.calls.append(len(responses))
        return np.array(
            [len(r[-1]["content"]) + 0.1 * len(p) for p, r in zip(prompts, responses, strict=True)]
        )


class FailingReward(LengthReward):
    """Fails on its ``fail_on``-th call, like a run killed part-way."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.fail_on = fail_on

    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> np.ndarray:
        if len(self.calls) + 1 == self.fail_on:
            raise KeyboardInterrupt
        return super().score(prompts, responses)


def write_jsonl(path: Path, records: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def response_rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "prompt": "Q" * i, "response": "a" * (i + 1)} for i in range(n)]


def test_single_responses_literal(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": 7, "model": "m1", "prompt": "Hi", "response": "Hello"},
            {
                "id": 8,
                "model": "m2",
                "prompt": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ],
                "response": [{"role": "assistant", "content": "xyz"}],
                "meta": {"not": "carried"},
            },
        ],
    )
    summary = score_file(LengthReward(), source, tmp_path / "out.parquet", progress=False)
    table = read_scores(tmp_path / "out.parquet")
    assert table.columns == ["row", "id", "model", "reward"]
    assert table.rows() == [(1, 7, "m1", 5.1), (2, 8, "m2", 3.3)]
    assert (summary.form, summary.total, summary.scored, summary.skipped) == ("response", 2, 2, 0)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_pairs_score_both_sides_in_one_call(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"prompt": "", "chosen": "long answer", "rejected": "no"},
            {"prompt": "p", "chosen": "a", "rejected": "bcd"},
        ],
    )
    reward = LengthReward()
    score_file(reward, source, tmp_path / "out.parquet", progress=False, batch_size=8)
    table = read_scores(tmp_path / "out.parquet")
    assert table.columns == ["row", "chosen_reward", "rejected_reward", "reward_margin"]
    assert table.rows() == [(1, 11.0, 2.0, 9.0), (2, 1.1, 3.1, pytest.approx(-2.0))]
    assert reward.calls == [4]


def test_blank_lines_keep_line_numbers_and_gz_is_read(tmp_path: Path) -> None:
    text = '{"prompt": "a", "response": "bb"}\n\n{"prompt": "a", "response": "ccc"}\n'
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(gzip.compress(text.encode()))
    score_file(LengthReward(), source, tmp_path / "out.parquet", progress=False)
    assert read_scores(tmp_path / "out.parquet").rows() == [(1, 2.1), (3, 3.1)]


def test_clashing_and_mixed_fields(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"prompt": "a", "response": "b", "reward": 0.5, "id": 1},
            {"prompt": "a", "response": "b", "reward": 2, "id": "x"},
        ],
    )
    score_file(LengthReward(), source, tmp_path / "out.parquet", progress=False, batch_size=1)
    table = read_scores(tmp_path / "out.parquet")
    assert table.columns == ["row", "input_reward", "id", "reward"]
    assert table["input_reward"].to_list() == [0.5, 2.0]
    assert table["id"].to_list() == ["1", "x"]


def test_output_records_reward_and_form(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(2))
    score_file(LengthReward(), source, tmp_path / "out.parquet", progress=False)
    recorded = json.loads(pl.read_parquet_metadata(tmp_path / "out.parquet")[METADATA_KEY])
    assert recorded == {"reward": reward_label(LengthReward()), "form": "response", "version": 1}
    assert reward_label(LengthReward()).endswith("LengthReward")


# --- resumption ----------------------------------------------------------------------------


def test_interrupted_run_resumes_without_rescoring(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(10))
    output = tmp_path / "out.parquet"
    failing = FailingReward(fail_on=4)  # batches of 2, parts of 4 rows: rows 1-4 are saved
    with pytest.raises(KeyboardInterrupt):
        score_file(failing, source, output, batch_size=2, chunk_size=4, progress=False)
    assert not output.exists()
    parts = sorted((tmp_path / "out.parquet.parts").glob("*.parquet"))
    assert [p.name for p in parts] == ["part-000000.parquet"]
    resumed = FailingReward(fail_on=0)
    resumed_summary = score_file(
        resumed, source, output, batch_size=2, chunk_size=4, progress=False
    )
    assert (resumed_summary.scored, resumed_summary.skipped) == (6, 4)
    assert sum(resumed.calls) == 6
    fresh = tmp_path / "fresh.parquet"
    score_file(LengthReward(), source, fresh, progress=False)
    assert read_scores(output).equals(read_scores(fresh))
    assert not (tmp_path / "out.parquet.parts").exists()


def test_finished_output_grows_with_new_lines_only(tmp_path: Path) -> None:
    rows = response_rows(5)
    source = write_jsonl(tmp_path / "in.jsonl", rows[:3])
    output = tmp_path / "out.parquet"
    score_file(LengthReward(), source, output, progress=False)
    write_jsonl(source, rows)
    reward = LengthReward()
    summary = score_file(reward, source, output, progress=False)
    assert (summary.scored, summary.skipped, sum(reward.calls)) == (2, 3, 2)
    assert read_scores(output)["row"].to_list() == [1, 2, 3, 4, 5]


def test_no_resume_rescores_everything(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(3))
    output = tmp_path / "out.parquet"
    score_file(LengthReward(), source, output, progress=False)
    reward = LengthReward()
    summary = score_file(reward, source, output, resume=False, progress=False)
    assert (summary.scored, summary.skipped, sum(reward.calls)) == (3, 0, 3)


@pytest.mark.parametrize(
    ("second_input", "message"),
    [
        pytest.param(
            [{"prompt": "a", "chosen": "b", "rejected": "c"}] * 3, "form", id="other-form"
        ),
        pytest.param(response_rows(1), "ends at line 1", id="shorter-input"),
    ],
)
def test_resuming_an_incompatible_output_fails(
    tmp_path: Path, second_input: list[dict[str, Any]], message: str
) -> None:
    output = tmp_path / "out.parquet"
    score_file(
        LengthReward(), write_jsonl(tmp_path / "a.jsonl", response_rows(3)), output, progress=False
    )
    with pytest.raises(InputError, match=message) as error:
        score_file(
            LengthReward(), write_jsonl(tmp_path / "b.jsonl", second_input), output, progress=False
        )
    assert error.value.field == "--output"


def test_resuming_with_another_reward_fails(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(2))
    output = tmp_path / "out.parquet"
    score_file(LengthReward(), source, output, progress=False)
    with pytest.raises(InputError, match="reward"):
        score_file(FailingReward(fail_on=0), source, output, progress=False)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "row", "field"),
    [
        pytest.param(['{"prompt": "a", "response": "b"}', "{oops"], 2, None, id="not-json"),
        pytest.param(['["a"]'], 1, None, id="not-an-object"),
        pytest.param(['{"prompt": "a"}'], 1, "response", id="no-response"),
        pytest.param(['{"prompt": "a", "response": "  "}'], 1, "response", id="empty-response"),
        pytest.param(['{"prompt": "a", "chosen": "b"}'], 1, "rejected", id="one-sided-pair"),
        pytest.param(['{"prompt": 3, "response": "b"}'], 1, "prompt", id="prompt-number"),
        pytest.param(
            ['{"prompt": "a", "response": [{"role": "assistant"}]}'],
            1,
            "response[0]",
            id="message-without-content",
        ),
        pytest.param(
            ['{"prompt": "a", "response": "b"}', '{"prompt": "a", "chosen": "b", "rejected": "c"}'],
            2,
            None,
            id="mixed-forms",
        ),
    ],
)
def test_bad_lines_name_file_line_and_field(
    tmp_path: Path, lines: list[str], row: int, field: str | None
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reward = LengthReward()
    with pytest.raises(InputError) as error:
        score_file(reward, source, tmp_path / "out.parquet", progress=False)
    assert (error.value.source, error.value.row, error.value.field) == (str(source), row, field)
    assert reward.calls == []  # checked before anything is scored


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"batch_size": 0}, "--batch_size", id="batch-size"),
        pytest.param({"chunk_size": 0}, "--chunk_size", id="chunk-size"),
        pytest.param({"actors": 0}, "--actors", id="actors"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict[str, int], field: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(1))
    with pytest.raises(InputError) as error:
        score_file(LengthReward(), source, tmp_path / "o.parquet", progress=False, **kwargs)  # type: ignore[arg-type]
    assert error.value.field == field


def test_missing_empty_and_same_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        score_file(LengthReward(), tmp_path / "none.jsonl", tmp_path / "o.parquet")
    (tmp_path / "blank.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no lines"):
        score_file(LengthReward(), tmp_path / "blank.jsonl", tmp_path / "o.parquet")
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(1))
    with pytest.raises(InputError, match="is the input"):
        score_file(LengthReward(), source, source)


def test_a_reward_returning_too_few_scores_fails(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(2))
    with pytest.raises(InputError, match="returned 1 scores for 2 responses"):
        score_file(ShortReward(), source, tmp_path / "o.parquet", progress=False)


# --- reward specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", [pytest.param("bleu", id="unknown"), pytest.param("rm:", id="rm-without-path")]
)
def test_unknown_reward_spec(spec: str) -> None:
    with pytest.raises(InputError) as error:
        reward_from_spec(spec)
    assert error.value.field == "--reward"


def test_rm_spec_needs_a_saved_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(InputError, match="no such model folder"):
        reward_from_spec(f"rm:{tmp_path / 'missing'}")
    with pytest.raises(InputError, match="no saved reward model here"):
        reward_from_spec(f"rm:{tmp_path}")


def test_flr_spec_reports_an_import_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tacitly.rewards.followup", None)  # import raises
    with pytest.raises(InputError, match="follow-up likelihood reward cannot be loaded"):
        reward_from_spec("flr")


def test_reward_label_resolves_model_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert reward_label("rm:runs/x") == f"rm:{tmp_path.resolve() / 'runs' / 'x'}"


# --- Ray -----------------------------------------------------------------------------------


def test_ray_missing_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import raises
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(2))
    with pytest.raises(InputError, match="Ray is not installed") as error:
        score_file(LengthReward(), source, tmp_path / "o.parquet", use_ray=True, progress=False)
    assert error.value.field == "--ray"


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    # the fake reward lives in this test module, which Ray's workers cannot import by name
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


RAY_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own settings


@RAY_WARNINGS
def test_ray_completes_a_partial_output_with_the_single_process_scores(
    tmp_path: Path, local_ray: Any
) -> None:
    """One Ray start is most of this file's time, so one test covers Ray: it completes a run
    interrupted on one process, and the result equals a single-process run."""
    records = [
        {"id": i, "prompt": "p" * i, "chosen": "c" * (i + 2), "rejected": "r" * (2 * i)}
        for i in range(1, 13)
    ]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        score_file(FailingReward(fail_on=3), source, output, batch_size=2, chunk_size=2)
    resumed = FailingReward(fail_on=0)  # the same reward class, so the same label
    summary = score_file(resumed, source, output, batch_size=3, use_ray=True, progress=False)
    assert (summary.scored, summary.skipped) == (8, 4)
    assert sum(resumed.calls) == 0  # the reward scored inside the actors, not here
    fresh = tmp_path / "fresh.parquet"
    score_file(FailingReward(fail_on=0), source, fresh, progress=False)
    assert read_scores(output).equals(read_scores(fresh))
    assert pl.read_parquet_metadata(output) == pl.read_parquet_metadata(fresh)


def test_model_folder_names_match_the_reward_models() -> None:
    pytest.importorskip("torch")
    from tacitly.rewards.gaze import CONFIG_NAME
    from tacitly.rewards.training import BEST_DIR
    from tacitly.scoring import BEST_MODEL_DIR, MODEL_CONFIG_NAME

    assert (MODEL_CONFIG_NAME, BEST_MODEL_DIR) == (CONFIG_NAME, BEST_DIR)


def test_rm_spec_accepts_a_training_run_folder(tmp_path: Path) -> None:
    from tacitly.scoring import check_reward_spec

    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "config.json").write_text("{}", encoding="utf-8")
    check_reward_spec(f"rm:{tmp_path}")  # no error: best/ holds the model


def test_rm_spec_scores_like_the_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
    from tiny_models import save_tiny_chat_lm

    texts = ["Hello there, how are you?", "Bread needs flour, water and salt.", "user assistant"]
    lm = save_tiny_chat_lm(tmp_path / "lm", texts=texts * 4, vocab_size=300)
    config = GazeRewardConfig(
        model_name=str(lm), mode="baseline", standardise=False, load_in_4bit=False
    )
    model = GazeRewardModel(config)
    model.save_pretrained(tmp_path / "run" / "best")
    rows = [{"prompt": "Hello?", "response": t} for t in texts]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    score_file(f"rm:{tmp_path / 'run'}", source, tmp_path / "out.parquet", progress=False)
    expected = model.score([r["prompt"] for r in rows], [r["response"] for r in rows])
    np.testing.assert_allclose(
        read_scores(tmp_path / "out.parquet")["reward"].to_numpy(), expected, rtol=1e-5, atol=1e-6
    )


class ShortReward:
    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> list[float]:
        return [0.0]


@RAY_WARNINGS
def test_an_input_error_in_an_actor_reaches_the_driver_as_it_was(
    tmp_path: Path, local_ray: Any
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", response_rows(3))
    with pytest.raises(InputError, match="returned 1 scores for 3 responses") as error:
        score_file(ShortReward(), source, tmp_path / "o.parquet", use_ray=True, progress=False)
    assert error.value.field == "reward"
