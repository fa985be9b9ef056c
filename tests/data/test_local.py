"""Tests for the shared-data builders: Auto-J, HH-RLHF and IFllm (tacitly.data.local).

Tiny hand-written fixtures fix the semantics with literal rows; the real-data tests pin the
counts found on the shared copy (``../shared/data``) and check that splits never share a group.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tacitly.data import PreferenceDataset, load_autoj, load_hh_rlhf, load_ifllm
from tacitly.errors import InputError

# --- Auto-J -------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _autoj(label: object, prompt: str = "Say hi", **extra: object) -> dict[str, object]:
    return {
        "scenario": "chitchat",
        "label": label,
        "prompt": prompt,
        "response 1": "Hi!",
        "response 2": "No.",
        **extra,
    }


def test_autoj_labels_ties_and_meta(tmp_path: Path) -> None:
    file = _write_jsonl(
        tmp_path / "autoj.jsonl",
        [_autoj(0, "one"), _autoj(1, "two"), _autoj(2, "three"), _autoj(0, "four")],
    )
    data = load_autoj(path=file)
    rows = sorted(data.rows, key=lambda row: row["meta"]["row"])
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "one"}],
        "chosen": [{"role": "assistant", "content": "Hi!"}],
        "rejected": [{"role": "assistant", "content": "No."}],
        "margin": None,
        "weight": None,
        "meta": {
            "source": "autoj",
            "id": "1",
            "group": "one",
            "row": 1,
            "scenario": "chitchat",
            "label": 0,
            "chosen_position": 1,
        },
    }
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "No."}]
    assert rows[1]["meta"]["chosen_position"] == 2
    assert [row["meta"]["row"] for row in rows] == [1, 2, 4]
    assert data.dropped == (("3", "tie"),)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        pytest.param(_autoj(3), 'field "label": label 3', id="bad-label"),
        pytest.param(_autoj(True), 'field "label"', id="bool-label"),
        pytest.param(
            {"label": 0, "prompt": "x", "response 1": "a"},
            'field "response 2": field missing',
            id="missing",
        ),
        pytest.param(_autoj(0, prompt=5), 'field "prompt": int', id="prompt-not-text"),  # type: ignore[arg-type]
    ],
)
def test_autoj_bad_rows_raise(tmp_path: Path, record: dict[str, object], match: str) -> None:
    file = _write_jsonl(tmp_path / "autoj.jsonl", [_autoj(0), record])
    with pytest.raises(InputError, match=f"autoj.jsonl, row 2, {match}"):
        load_autoj(path=file)


def test_missing_data_file_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Auto-J pairwise file not found.*TACITLY_DATA"):
        load_autoj(data_dir=tmp_path)


def test_data_dir_comes_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "preferences").mkdir()
    _write_jsonl(tmp_path / "preferences" / "autoj_pairwise.jsonl", [_autoj(1)])
    monkeypatch.setenv("TACITLY_DATA", str(tmp_path))
    assert load_autoj().rows[0]["chosen"][0]["content"] == "No."


# --- HH-RLHF ------------------------------------------------------------------------------


def _hh(chosen: str, rejected: str) -> dict[str, object]:
    return {"chosen": chosen, "rejected": rejected}


def test_hh_rlhf_turns_and_drops(tmp_path: Path) -> None:
    shared = "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Help me?"
    records = [
        _hh(shared + "\n\nAssistant: Sure.", shared + "\n\nAssistant: No."),
        _hh(shared + "\n\nAssistant: ", shared + "\n\nAssistant: No."),
        _hh(shared + "\n\nAssistant: Same", shared + "\n\nAssistant: Same"),
        _hh("no markers", "\n\nHuman: x\n\nAssistant: y"),
        _hh("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: d"),
    ]
    file = tmp_path / "hh.jsonl.gz"
    with gzip.open(file, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    data = load_hh_rlhf(path=file)
    assert data.rows == [
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Help me?"},
            ],
            "chosen": [{"role": "assistant", "content": "Sure."}],
            "rejected": [{"role": "assistant", "content": "No."}],
            "margin": None,
            "weight": None,
            "meta": {"source": "hh-rlhf", "id": "1", "group": "Hi", "row": 1},
        }
    ]
    assert data.dropped == (
        ("2", "empty response"),
        ("3", "identical responses"),
        ("4", "transcript does not start with a Human turn"),
        ("5", "empty prompt turn"),
    )


def test_hh_rlhf_bad_json_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "hh.jsonl"
    file.write_text('{"chosen": "x", "rejected": "y"}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"hh\.jsonl, row 2: not JSON"):
        load_hh_rlhf(path=file)


# --- IFllm --------------------------------------------------------------------------------

IFLLM_HEADER = (
    "query_ID,user_id,task_id,user_query,llm_response_1,llm_response_2,llm_name_1,llm_name_2,"
    "likert_1,likert_2,preference,adjustment,query_timestamp\n"
)


def test_ifllm_preferences_and_drops(tmp_path: Path) -> None:
    file = tmp_path / "query_logs_table.csv"
    file.write_text(
        IFLLM_HEADER
        + '1,w1,4,Why?,"Because,\nreasons.",Dunno.,m1,m2,5,2,1.0,0,2025-04-23 22:32:38\n'
        + "2,w1,4,How?,Like this.,Like that.,m1,m2,3,4,2.0,0,2025-04-23 22:33:00\n"
        + "3,w2,5,What?,One.,Two.,m1,m2,3,3,,0,2025-04-23 22:34:00\n"
        + "4,w2,5,Who?,Me.,,m1,,4,,1.0,0,2025-04-23 22:35:00\n",
        encoding="utf-8",
    )
    data = load_ifllm(path=tmp_path)
    first, second = sorted(data.rows, key=lambda row: row["meta"]["query_ID"])
    assert first == {
        "prompt": [{"role": "user", "content": "Why?"}],
        "chosen": [{"role": "assistant", "content": "Because,\nreasons."}],
        "rejected": [{"role": "assistant", "content": "Dunno."}],
        "margin": None,
        "weight": None,
        "meta": {
            "source": "ifllm",
            "id": "1",
            "group": "w1",
            "row": 1,
            "user_id": "w1",
            "task_id": 4,
            "query_ID": 1,
            "query_timestamp": "2025-04-23T22:32:38+00:00",
            "chosen_position": 1,
            "likert_1": 5.0,
            "likert_2": 2.0,
            "llm_name_1": "m1",
            "llm_name_2": "m2",
            "likert_chosen": 5.0,
            "likert_rejected": 2.0,
            "llm_chosen": "m1",
            "llm_rejected": "m2",
        },
    }
    assert second["chosen"][0]["content"] == "Like that."
    assert (second["meta"]["llm_chosen"], second["meta"]["likert_chosen"]) == ("m2", 4.0)
    assert data.dropped == (("3", "no preference given"), ("4", "single response"))


# --- real data ----------------------------------------------------------------------------


def _assert_groups_stay_in_one_split(data: PreferenceDataset) -> None:
    seen: dict[str, str] = {}
    for split, rows in data.splits.items():
        for row in rows:
            assert seen.setdefault(row["meta"]["group"], split) == split


def test_real_autoj(shared_data: Path) -> None:
    data = load_autoj(data_dir=shared_data)
    assert len(data) == 1017  # 1,392 rows − 373 ties − 1 empty answer − 1 identical pair
    assert data.drop_summary() == {"tie": 373, "empty response": 1, "identical responses": 1}
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 814,
        "validation": 101,
        "test": 102,
    }
    assert len({row["meta"]["scenario"] for row in data}) == 58
    _assert_groups_stay_in_one_split(data)
    # Label semantics checked by hand: label 0 = response 1 preferred, 1 = response 2.
    by_row = {row["meta"]["row"]: row for row in data}
    assert by_row[787]["chosen"][0]["content"] == "Perseverers"  # the right translation
    assert by_row[781]["meta"]["label"] == 1
    assert by_row[781]["chosen"][0]["content"].startswith("నీవు ఎలా ఉన్నావు")
    assert load_autoj(data_dir=shared_data).rows == data.rows


def test_real_hh_rlhf(shared_data: Path) -> None:
    data = load_hh_rlhf(data_dir=shared_data)
    assert len(data) == 2308  # 2,312 pairs − 4 with an empty chosen answer
    assert data.dropped == tuple((row, "empty response") for row in ("87", "517", "926", "1104"))
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 1846,
        "validation": 231,
        "test": 231,
    }
    _assert_groups_stay_in_one_split(data)
    for row in data:
        roles = [turn["role"] for turn in row["prompt"]]
        assert roles[::2] == ["user"] * len(roles[::2])
        assert roles[1::2] == ["assistant"] * len(roles[1::2])
        assert roles[-1] == "user"


def test_real_ifllm(shared_data: Path) -> None:
    data = load_ifllm(data_dir=shared_data)
    assert len(data) == 544  # 568 pairwise rows − 24 without a preference
    assert data.drop_summary() == {"single response": 643, "no preference given": 24}
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 401,
        "validation": 85,
        "test": 58,
    }
    assert len({row["meta"]["user_id"] for row in data}) == 44
    _assert_groups_stay_in_one_split(data)
    positions = [row["meta"]["chosen_position"] for row in data]
    assert (positions.count(1), positions.count(2)) == (269, 275)
