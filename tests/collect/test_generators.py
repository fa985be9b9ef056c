"""Pair sources: a pairs file, the demo pairs, a local model, an OpenAI-compatible endpoint.

The model is a tiny random Llama built here (never SmolLM2); the endpoint is a real HTTP server
on loopback that checks the key and answers with canned completions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tacitly.collect.generators import (
    FilePairs,
    GeneratedPair,
    GeneratorError,
    ModelPairs,
    OpenAIPairs,
    make_source,
)
from tacitly.collect.study import GeneratorConfig, StudyConfig
from tacitly.errors import InputError
from tiny_models import save_tiny_chat_lm

# ------------------------------------------------------------------------------------------
# FilePairs


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return _write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            json.dumps({"question": "Q1?", "response_1": "a1", "response_2": "b1"}),
            "",
            json.dumps(
                {
                    "question": "Q2?",
                    "response_1": "a2",
                    "response_2": "b2",
                    "source_1": "gpt",
                    "source_2": "human",
                }
            ),
        ],
    )


def test_file_pairs_are_served_in_file_order_and_wrap_around(pairs_file: Path) -> None:
    source = FilePairs(pairs_file)
    assert [source.pair(None, index=i).question for i in range(3)] == ["Q1?", "Q2?", "Q1?"]
    assert source.pair(None, index=1) == GeneratedPair("Q2?", ("a2", "b2"), ("gpt", "human"))
    assert source.pair(None, index=0).sources == (None, None)


def test_file_pairs_look_a_question_up_by_its_text(pairs_file: Path) -> None:
    source = FilePairs(pairs_file)
    assert source.pair("Q2?", index=0).responses == ("a2", "b2")
    with pytest.raises(InputError, match="no pair for the question 'Q3\\?'"):
        source.pair("Q3?", index=0)


@pytest.mark.parametrize(
    ("second_line", "row", "field"),
    [
        pytest.param("{not json", 2, None, id="not-json"),
        pytest.param(json.dumps({"question": "Q", "response_1": "a"}), 2, "response_2", id="key"),
        pytest.param(
            json.dumps({"question": " ", "response_1": "a", "response_2": "b"}),
            2,
            "question",
            id="blank",
        ),
        pytest.param(json.dumps(["Q", "a", "b"]), 2, "question", id="not-object"),
    ],
)
def test_bad_lines_name_the_file_and_row(
    tmp_path: Path, second_line: str, row: int, field: str | None
) -> None:
    good = json.dumps({"question": "Q1?", "response_1": "a", "response_2": "b"})
    path = _write_jsonl(tmp_path / "bad.jsonl", [good, second_line])
    with pytest.raises(InputError) as error:
        FilePairs(path)
    assert error.value.source == str(path)
    assert error.value.row == row
    assert error.value.field == field


def test_missing_or_empty_pairs_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such pairs file"):
        FilePairs(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="no pairs"):
        FilePairs(_write_jsonl(tmp_path / "empty.jsonl", [""]))


def test_demo_pairs_have_both_sides_and_a_seeded_shuffle() -> None:
    first, again, other = FilePairs(seed=0), FilePairs(seed=0), FilePairs(seed=1)
    assert len(first.pairs) > 3
    for pair in first.pairs:
        assert all(response.strip() for response in pair.responses)
        assert pair.responses[0] != pair.responses[1]
        assert sorted(pair.sources) == ["demo-better", "demo-worse"]  # type: ignore[type-var]
    assert first.pairs == again.pairs
    assert [p.question for p in first.pairs] == [p.question for p in other.pairs]
    assert [p.sources for p in first.pairs] != [p.sources for p in other.pairs]
    # The same two answers, only their sides change with the seed.
    for mine, theirs in zip(first.pairs, other.pairs, strict=True):
        assert set(mine.responses) == set(theirs.responses)
    better_left = sum(p.sources[0] == "demo-better" for p in first.pairs)
    assert 0 < better_left < len(first.pairs)


# ------------------------------------------------------------------------------------------
# ModelPairs on a tiny random Llama

SENTENCES = [
    "How do I bake bread at home? Mix flour, water, salt and yeast.",
    "The quick brown fox jumps over the lazy dog near the river.",
    "system user assistant",
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-chat-llama") / "tiny-llama"
    return save_tiny_chat_lm(folder, texts=SENTENCES * 4, vocab_size=300)


def _model_pairs(folder: Path, **options: Any) -> ModelPairs:
    settings: dict[str, Any] = {"max_new_tokens": 8, "temperature": 1.0, "seed": 3}
    return ModelPairs(folder, **{**settings, **options}, device="cpu")


def test_model_pairs_sample_two_answers_named_after_the_model(tiny_lm: Path) -> None:
    pair = _model_pairs(tiny_lm).pair("How do I bake bread?", index=0)
    assert pair.question == "How do I bake bread?"
    assert pair.sources == ("tiny-llama#sample1", "tiny-llama#sample2")
    assert all(isinstance(text, str) for text in pair.responses)
    assert pair.responses[0] != pair.responses[1]


def test_model_pairs_are_deterministic_per_task(tiny_lm: Path) -> None:
    question = "How do I bake bread?"
    source = _model_pairs(tiny_lm)
    first = source.pair(question, index=0)
    # A restarted server (a new source) gives the same pair for the same task...
    assert _model_pairs(tiny_lm).pair(question, index=0) == first
    assert source.pair(question, index=0) == first
    # ...while another task, question or study seed samples afresh.
    assert source.pair(question, index=1).responses != first.responses
    assert source.pair("Why is the sky blue?", index=0).responses != first.responses
    assert _model_pairs(tiny_lm, seed=4).pair(question, index=0).responses != first.responses


def test_model_pairs_leave_the_global_torch_rng_alone(tiny_lm: Path) -> None:
    import torch

    source = _model_pairs(tiny_lm).load()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    source.pair("How do I bake bread?", index=0)
    assert torch.equal(torch.rand(3), expected)


def test_greedy_model_pairs_show_the_one_answer_twice(tiny_lm: Path) -> None:
    pair = _model_pairs(tiny_lm, temperature=0.0).pair("How do I bake bread?", index=0)
    assert pair.responses[0] == pair.responses[1]


def test_model_pairs_are_safe_from_several_threads(tiny_lm: Path) -> None:
    source = _model_pairs(tiny_lm)
    expected = _model_pairs(tiny_lm).pair("How do I bake bread?", index=2)
    results: list[GeneratedPair] = []

    def work() -> None:
        results.append(source.pair("How do I bake bread?", index=2))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_model_pairs_need_a_question(tiny_lm: Path) -> None:
    with pytest.raises(InputError, match="task 0 has no question"):
        _model_pairs(tiny_lm).pair(None, index=0)


# ------------------------------------------------------------------------------------------
# make_source and the study's questions


def test_make_source_builds_each_kind(pairs_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "k")
    file_source = make_source(GeneratorConfig(kind="file", path=str(pairs_file)))
    assert isinstance(file_source, FilePairs)
    assert file_source.pair(None, index=0).question == "Q1?"
    model = make_source(GeneratorConfig(kind="smollm2", temperature=0.5, max_new_tokens=9, seed=7))
    assert isinstance(model, ModelPairs)
    assert (model.model_name, model.label) == (None, "SmolLM2-135M-Instruct")
    assert (model.temperature, model.max_new_tokens, model.seed) == (0.5, 9, 7)
    assert model._loaded is None  # lazy: nothing is loaded before the first task
    remote = make_source(
        GeneratorConfig(kind="openai", url="http://h/v1/", model="m", api_key_env="TEST_KEY")
    )
    assert isinstance(remote, OpenAIPairs)
    assert remote.endpoint == "http://h/v1/chat/completions"


@pytest.mark.parametrize("kind", ["smollm2", "openai"])
def test_a_generator_study_without_questions_fails_at_startup(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KEY", "k")
    generator = GeneratorConfig(kind=kind, url="http://h/v1", model="m", api_key_env="TEST_KEY")  # type: ignore[arg-type]
    with pytest.raises(InputError) as error:
        make_source(StudyConfig(generator=generator))
    assert error.value.field == "questions"
    assert "ask: true" in str(error.value)
    asked = make_source(StudyConfig(generator=generator, ask=True))
    given = make_source(StudyConfig(generator=generator, questions=["A?", "B?", "C?"]))
    assert type(asked) is type(given)


def test_a_file_study_brings_its_own_questions(pairs_file: Path) -> None:
    study = StudyConfig(generator=GeneratorConfig(kind="file", path=str(pairs_file)))
    assert make_source(study).pair(None, index=1).question == "Q2?"


# ------------------------------------------------------------------------------------------
# OpenAIPairs against a real HTTP server on loopback

KEY = "sk-test-123"


class FakeEndpoint(BaseHTTPRequestHandler):
    """``/v1/chat/completions``: the model name picks the reply (``ok``, ``not-json``,
    ``no-choices``, ``boom``); a wrong key is a 401."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEndpoint.requests.append({"path": self.path, "body": body})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._reply(401, json.dumps({"error": {"message": "Incorrect API key"}}))
        elif self.path != "/v1/chat/completions":
            self._reply(404, "{}")
        elif body["model"] == "not-json":
            self._reply(200, "<html>gateway</html>")
        elif body["model"] == "no-choices":
            self._reply(200, json.dumps({"choices": []}))
        elif body["model"] == "boom":
            self._reply(500, "internal error")
        else:
            number = len(FakeEndpoint.requests)
            content = f" answer {number} to {body['messages'][0]['content']} "
            reply = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]
            }
            self._reply(200, json.dumps(reply))

    def _reply(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    """The fake endpoint's base URL, ``http://127.0.0.1:<port>/v1``."""
    FakeEndpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _remote(url: str, model: str = "ok", **options: Any) -> OpenAIPairs:
    return OpenAIPairs(url=url, model=model, api_key_env="TEST_KEY", timeout_s=5.0, **options)


def test_openai_pairs_ask_the_endpoint_twice(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)
    pair = _remote(endpoint, temperature=0.3, max_new_tokens=17).pair("Why?", index=0)
    assert pair == GeneratedPair(
        "Why?", ("answer 1 to Why?", "answer 2 to Why?"), ("ok#sample1", "ok#sample2")
    )
    assert [request["path"] for request in FakeEndpoint.requests] == ["/v1/chat/completions"] * 2
    assert FakeEndpoint.requests[0]["body"] == {
        "model": "ok",
        "messages": [{"role": "user", "content": "Why?"}],
        "temperature": 0.3,
        "max_tokens": 17,
        "n": 1,
    }


def test_a_wrong_key_is_a_clear_401(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "sk-wrong")
    with pytest.raises(GeneratorError) as error:
        _remote(endpoint).pair("Why?", index=0)
    message = str(error.value)
    assert message.startswith(f"{endpoint}/chat/completions: HTTP 401")
    assert "Incorrect API key" in message
    assert "sk-wrong" not in message


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param(
            "not-json", "HTTP 200 but the reply is not JSON: <html>gateway</html>", id="html"
        ),
        pytest.param(
            "no-choices", "HTTP 200 but the reply has no choices[0].message.content", id="empty"
        ),
        pytest.param("boom", "HTTP 500: internal error", id="500"),
    ],
)
def test_malformed_or_failed_replies_are_clear_errors(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, model: str, expected: str
) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)
    with pytest.raises(GeneratorError) as error:
        _remote(endpoint, model).pair("Why?", index=0)
    assert str(error.value).startswith(f"{endpoint}/chat/completions: {expected}")


def test_an_unreachable_endpoint_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        monkeypatch.setenv("TEST_KEY", KEY)
        with pytest.raises(
            GeneratorError, match=f"http://127.0.0.1:{port}/v1/chat/completions: no answer"
        ):
            _remote(f"http://127.0.0.1:{port}/v1").pair("Why?", index=0)


@pytest.mark.parametrize("value", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_a_missing_key_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("TEST_KEY", value)
    with pytest.raises(InputError) as error:
        _remote("http://127.0.0.1:1/v1")
    assert error.value.field == "generator.api_key_env"
    assert "TEST_KEY is not set" in str(error.value)
