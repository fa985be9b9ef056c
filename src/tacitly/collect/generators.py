"""Where the two answers of a task come from: a pairs file (or the embedded demo pairs), the
embedded SmolLM2 sampling two answers, or an OpenAI-compatible endpoint.

Every source is a :class:`PairSource`: ``pair(question, index=i)`` gives the ``i``-th task's
question and its two answers. A file brings its own questions; the two generators answer the
study's questions or the participant's (``ask: true``), and refuse a study that has neither.

Examples
--------
>>> source = FilePairs()  # the embedded demo pairs
>>> pair = source.pair(None, index=0)
>>> len(pair.responses), pair.responses[0] != pair.responses[1]
(2, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tacitly.backbones import DEFAULT_LM
from tacitly.collect.study import GeneratorConfig, StudyConfig
from tacitly.errors import InputError

if TYPE_CHECKING:
    import httpx
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "FilePairs",
    "GeneratedPair",
    "GeneratorError",
    "ModelPairs",
    "OpenAIPairs",
    "PairSource",
    "make_source",
]


@dataclass(frozen=True)
class GeneratedPair:
    """A question and the two answers shown side by side (left = ``responses[0]``)."""

    question: str
    responses: tuple[str, str]
    sources: tuple[str | None, str | None] = (None, None)


class PairSource(Protocol):
    """Makes the ``index``-th task's pair; ``question`` is None when the source picks it."""

    def pair(self, question: str | None, *, index: int) -> GeneratedPair: ...


class GeneratorError(RuntimeError):
    """A generator could not produce answers: an endpoint failed or replied nonsense."""


# --------------------------------------------------------------------------------------------
# Pre-generated pairs


class FilePairs:
    """Pre-generated pairs, served in file order; a given question is looked up by its text.

    Parameters
    ----------
    path:
        JSONL, one ``{"question", "response_1", "response_2"}`` (+ ``source_1``, ``source_2``)
        per line (default: None, the embedded demo pairs, sides shuffled with ``seed``).
    seed:
        Seed of the side shuffle of the demo pairs (default: 0).
    """

    def __init__(self, path: str | Path | None = None, *, seed: int = 0) -> None:
        self.pairs = _read_pairs(Path(path)) if path is not None else _demo_pairs(seed)
        self.by_question = {pair.question: pair for pair in self.pairs}

    def pair(self, question: str | None, *, index: int) -> GeneratedPair:
        if question is None:
            return self.pairs[index % len(self.pairs)]
        found = self.by_question.get(question)
        if found is None:
            raise InputError(
                f"no pair for the question {question[:80]!r}",
                field="generator.path",
                expected="a pairs file with a line for every question of the study",
            )
        return found


# --------------------------------------------------------------------------------------------
# A local causal language model


class ModelPairs:
    """Two answers sampled from a local causal language model with its chat template.

    The model is loaded on the first :meth:`pair` (or :meth:`load`), not at construction, so a
    server starts at once; generation runs under a lock because the server calls it from
    several threads. Each task's sampling is seeded from ``seed``, the task's index and its
    question, so a restarted server gives the same pair for the same task.

    Parameters
    ----------
    model:
        A local folder written by ``save_pretrained`` or a Hugging Face id (default: None, the
        embedded SmolLM2-135M-Instruct).
    max_new_tokens:
        Longest answer, in tokens (default: 256).
    temperature:
        Sampling temperature; 0 means greedy decoding, so both answers are the same
        (default: 0.9).
    seed:
        Seed of the study's sampling (default: 0).
    questions_known:
        Whether the study gives questions or lets the participant ask them (default: True);
        False raises at once, because a generator cannot invent the questions.
    device:
        Where to run the model (default: None, the GPU when there is one, else the CPU).

    Raises
    ------
    InputError
        When ``questions_known`` is False.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.9,
        seed: int = 0,
        questions_known: bool = True,
        device: str | None = None,
    ) -> None:
        _require_questions("smollm2", questions_known)
        self.model_name = None if model is None else str(model)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.device = device
        self.label = DEFAULT_LM if model is None else Path(str(model)).name
        self._lock = threading.Lock()
        self._loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None

    def load(self) -> ModelPairs:
        """Load the model now (it is otherwise loaded by the first :meth:`pair`)."""
        with self._lock:
            self._ensure_loaded()
        return self

    def pair(self, question: str | None, *, index: int) -> GeneratedPair:
        text = _question_or_error(question, index=index)
        with self._lock:
            model, tokenizer = self._ensure_loaded()
            answers = _sample_two(
                model,
                tokenizer,
                text,
                seed=_task_seed(self.seed, index, text),
                temperature=self.temperature,
                max_new_tokens=self.max_new_tokens,
            )
        return GeneratedPair(text, answers, _sample_names(self.label))

    def _ensure_loaded(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self._loaded is None:
            import torch

            from tacitly.backbones import load_causal_lm

            device = self.device or ("cuda" if torch.cuda.is_available() else None)
            self._loaded = load_causal_lm(self.model_name, device=device)
        return self._loaded


def _sample_two(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    *,
    seed: int,
    temperature: float,
    max_new_tokens: int,
) -> tuple[str, str]:
    import torch

    prompt: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    inputs = {name: tensor.to(model.device) for name, tensor in prompt.items()}
    sampling = temperature > 0
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        # Greedy decoding cannot return two sequences; the one answer is shown twice.
        "num_return_sequences": 2 if sampling else 1,
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    }
    if sampling:
        options["temperature"] = temperature
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    # A private RNG state: seeding the global one would reseed every other user of torch.
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        output = model.generate(**inputs, **options)  # type: ignore[operator]
    start = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(output[:, start:], skip_special_tokens=True)
    answers = [str(text).strip() for text in texts]
    return (answers[0], answers[-1])


def _task_seed(seed: int, index: int, question: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{question}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


# --------------------------------------------------------------------------------------------
# An OpenAI-compatible endpoint


class OpenAIPairs:
    """Two answers from any OpenAI-compatible chat endpoint, one request per answer.

    Each answer is a ``POST {url}/chat/completions`` with ``model``, the question as a user
    message, ``temperature``, ``max_tokens`` and ``n: 1``; the key travels as
    ``Authorization: Bearer <key>``. Remote sampling is not seeded, so a restart may give other
    answers to the same question.

    Parameters
    ----------
    url:
        The API's base URL, e.g. ``http://localhost:8080/v1``.
    model:
        The model name the endpoint knows.
    api_key_env:
        The environment variable that holds the key, read once here and never from a file
        (default: "OPENAI_API_KEY").
    max_new_tokens:
        ``max_tokens`` of each request (default: 256).
    temperature:
        Sampling temperature (default: 0.9).
    questions_known:
        Whether the study gives questions or lets the participant ask them (default: True).
    timeout_s:
        Seconds to wait for an answer; connecting gets at most 10 s (default: 120.0).

    Raises
    ------
    InputError
        When the environment variable is unset or empty, or ``questions_known`` is False.
    """

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_new_tokens: int = 256,
        temperature: float = 0.9,
        questions_known: bool = True,
        timeout_s: float = 120.0,
    ) -> None:
        import httpx

        _require_questions("openai", questions_known)
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise InputError(
                f"the environment variable {api_key_env} is not set",
                field="generator.api_key_env",
                expected=f"the endpoint's API key in ${api_key_env}",
            )
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers={"Authorization": f"Bearer {key}"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def pair(self, question: str | None, *, index: int) -> GeneratedPair:
        text = _question_or_error(question, index=index)
        answers = (self._complete(text), self._complete(text))
        return GeneratedPair(text, answers, _sample_names(self.model))

    def _complete(self, question: str) -> str:
        import httpx

        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": question}],
            "temperature": self.temperature,
            "max_tokens": self.max_new_tokens,
            "n": 1,
        }
        try:
            reply = self._client.post(self.endpoint, json=body)
        except httpx.HTTPError as error:
            raise GeneratorError(
                f"{self.endpoint}: no answer ({type(error).__name__}: {error})"
            ) from error
        if reply.status_code >= 400:
            raise GeneratorError(
                f"{self.endpoint}: HTTP {reply.status_code}: {_excerpt(reply.text)}"
            )
        return _completion_text(reply, endpoint=self.endpoint)


def _completion_text(reply: httpx.Response, *, endpoint: str) -> str:
    try:
        data: Any = reply.json()
    except ValueError:
        raise GeneratorError(
            f"{endpoint}: HTTP {reply.status_code} but the reply is not JSON: "
            f"{_excerpt(reply.text)}"
        ) from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise GeneratorError(
            f"{endpoint}: HTTP {reply.status_code} but the reply has no "
            f"choices[0].message.content string: {_excerpt(reply.text)}"
        )
    return content.strip()


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


# --------------------------------------------------------------------------------------------
# Shared


def _sample_names(label: str) -> tuple[str, str]:
    return (f"{label}#sample1", f"{label}#sample2")


def _require_questions(kind: str, questions_known: bool) -> None:
    if not questions_known:
        raise InputError(
            f"the {kind} generator answers questions but this study has none",
            field="questions",
            expected="`questions` in the study file, or `ask: true` so participants type them",
        )


def _question_or_error(question: str | None, *, index: int) -> str:
    if question is None or not question.strip():
        raise InputError(
            f"task {index} has no question for the generator to answer",
            field="questions",
            expected="`questions` in the study file, or `ask: true`",
        )
    return question


def make_source(config: GeneratorConfig | StudyConfig) -> PairSource:
    """The pair source a study's ``generator`` section describes.

    Given the whole study, a generating source also checks that the study has questions (or
    lets participants ask them); given only the ``generator`` section, that is checked when a
    task without a question comes.

    Raises
    ------
    InputError
        When a generating source gets no questions, or the endpoint's key is not in the
        environment.
    """
    if isinstance(config, StudyConfig):
        generator = config.generator
        questions_known = config.ask or bool(config.questions)
    else:
        generator, questions_known = config, True
    if generator.kind == "file":
        return FilePairs(generator.path, seed=generator.seed)
    if generator.kind == "smollm2":
        return ModelPairs(
            generator.model,
            max_new_tokens=generator.max_new_tokens,
            temperature=generator.temperature,
            seed=generator.seed,
            questions_known=questions_known,
        )
    if generator.url is None or generator.model is None:
        raise InputError(
            "the openai generator needs url and model", field="generator", expected="url, model"
        )
    return OpenAIPairs(
        url=generator.url,
        model=generator.model,
        api_key_env=generator.api_key_env,
        max_new_tokens=generator.max_new_tokens,
        temperature=generator.temperature,
        questions_known=questions_known,
    )


def _read_pairs(path: Path) -> list[GeneratedPair]:
    if not path.is_file():
        raise InputError("no such pairs file", source=str(path), field="generator.path")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"not JSON: {error.msg}", source=str(path), row=number) from None
        for key in ("question", "response_1", "response_2"):
            value = record.get(key) if isinstance(record, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    "missing or empty", source=str(path), row=number, field=key,
                    expected="a non-empty string",
                )  # fmt: skip
        pairs.append(
            GeneratedPair(
                question=record["question"],
                responses=(record["response_1"], record["response_2"]),
                sources=(record.get("source_1"), record.get("source_2")),
            )
        )
    if not pairs:
        raise InputError("no pairs", source=str(path), expected="at least one JSONL line")
    return pairs


def _demo_pairs(seed: int) -> list[GeneratedPair]:
    from tacitly.data.demo import load_demo

    rng = random.Random(seed)
    pairs = []
    demo = load_demo()
    for row in demo["test"] + demo["train"]:
        if len(row["prompt"]) != 1:
            continue
        better, worse = row["chosen"][-1]["content"], row["rejected"][-1]["content"]
        flip = rng.random() < 0.5
        responses = (worse, better) if flip else (better, worse)
        names = ("demo-worse", "demo-better") if flip else ("demo-better", "demo-worse")
        pairs.append(GeneratedPair(row["prompt"][0]["content"], responses, names))
    return pairs
