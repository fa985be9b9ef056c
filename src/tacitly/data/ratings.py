"""Absolute ratings of single responses, for score-correlation benchmarks.

:func:`load_vicuna_ratings` reads the Vicuna-bench responses that GPT-4 rated 1–5 three times
each under a rubric (``preferences/vicuna_gpt4_rubric_scores.json`` in the shared data, from
prometheus-eval): 80 questions × 4 models = 320 responses. The source keeps the question and
the response only inside the judge prompt it sent to GPT-4 (field ``instruction``)::

    ###Task Description: ... ###The instruction to evaluate: QUESTION
    ###Response to evaluate: RESPONSE ###Reference Answer (Score 5): ...
    ###Score Rubrics: ... ###Feedback:

so the loader cuts the two out between those headings. The response ends at the first of the
headings that follow it in the template (reference answer, rubric, feedback), taking the *last*
occurrence of each, so a response that itself quotes such a heading stays whole.
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any, TypedDict

from tacitly.data.local import data_root
from tacitly.data.schema import Message
from tacitly.errors import InputError

__all__ = ["VICUNA_RATINGS_FILE", "RatedResponse", "extract_judged_pair", "load_vicuna_ratings"]

StrPath = str | PathLike[str]

VICUNA_RATINGS_FILE = "preferences/vicuna_gpt4_rubric_scores.json"
_QUESTION_HEADING = "###The instruction to evaluate:"
_RESPONSE_HEADING = "###Response to evaluate:"
# Sections the prometheus template puts after the response, in this order.
_AFTER_RESPONSE = ("###Reference Answer", "###Score Rubric", "###Feedback:")


class RatedResponse(TypedDict):
    """One rated response.

    ``prompt`` and ``response`` are conversations (TRL's form), ``model`` the system that wrote
    the response (None if the source does not say), ``question_id`` the source's question
    number (shared by the responses to one question), ``category`` the question's category,
    ``scores`` the judge's ratings and ``score`` their mean; ``row`` is the 1-based position of
    the record in the source file.
    """

    prompt: list[Message]
    response: list[Message]
    model: str | None
    question_id: int | None
    category: str | None
    scores: list[int]
    score: float
    row: int


def extract_judged_pair(instruction: str) -> tuple[str, str] | None:
    """The question and the response inside a prometheus-style judge prompt.

    Parameters
    ----------
    instruction:
        The judge prompt.

    Returns
    -------
    tuple of str or None
        ``(question, response)`` with surrounding whitespace removed; None when a heading is
        missing or either part is empty.

    Examples
    --------
    >>> prompt = ("###Task Description:\\nRate it.\\n\\n###The instruction to evaluate:\\nHi?\\n\\n"
    ...           "###Response to evaluate:\\nHello!\\n\\n###Score Rubrics:\\n[Polite?]\\n\\n"
    ...           "###Feedback: ")
    >>> extract_judged_pair(prompt)
    ('Hi?', 'Hello!')
    >>> extract_judged_pair("no headings") is None
    True
    """
    question_start = instruction.find(_QUESTION_HEADING)
    if question_start < 0:
        return None
    question_start += len(_QUESTION_HEADING)
    response_heading = instruction.find(_RESPONSE_HEADING, question_start)
    if response_heading < 0:
        return None
    response_start = response_heading + len(_RESPONSE_HEADING)
    ends = [instruction.rfind(heading) for heading in _AFTER_RESPONSE]
    ends = [end for end in ends if end >= response_start]
    if not ends:
        return None
    question = instruction[question_start:response_heading].strip()
    response = instruction[response_start : min(ends)].strip()
    if not question or not response:
        return None
    return question, response


def load_vicuna_ratings(
    *, path: StrPath | None = None, data_dir: StrPath | None = None
) -> list[RatedResponse]:
    """The Vicuna-bench responses with GPT-4's rubric scores (1–5, three per response).

    Parameters
    ----------
    path:
        The JSON file (default: ``preferences/vicuna_gpt4_rubric_scores.json`` under the data
        folder).
    data_dir:
        The shared data folder (default: ``$TACITLY_DATA`` or ``../shared/data``).

    Returns
    -------
    list of RatedResponse
        In file order; 320 rows (80 questions × vicuna, chat_gpt, wizard, llama-2-chat) on the
        shared copy. ``model`` is the source's ``response_source``, ``question_id`` its
        ``idx``.

    Raises
    ------
    InputError
        If the file is missing or not a JSON list, or a record (named by its 1-based position
        and ``idx``) lacks the judge prompt, has a prompt the question or response cannot be cut
        from, or has scores that are not integers from 1 to 5.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "ratings.json"
    >>> judge = ("###The instruction to evaluate:\\nHi?\\n\\n###Response to evaluate:\\nHello!"
    ...          "\\n\\n###Score Rubrics:\\n...\\n\\n###Feedback: ")
    >>> record = {"idx": 1, "response_source": "vicuna", "instruction": judge,
    ...           "gpt4_score": [4, 5, 5]}
    >>> _ = file.write_text(json.dumps([record]))
    >>> row = load_vicuna_ratings(path=file)[0]
    >>> row["prompt"], row["response"], row["model"], row["score"]
    ([{'role': 'user', 'content': 'Hi?'}], [{'role': 'assistant', 'content': 'Hello!'}], \
'vicuna', 4.666666666666667)
    """
    file = Path(path) if path is not None else data_root(data_dir) / VICUNA_RATINGS_FILE
    if not file.is_file():
        raise InputError(
            "Vicuna-bench ratings not found",
            source=file,
            expected=f"the file {VICUNA_RATINGS_FILE} under the shared data folder "
            "(pass path=... or data_dir=..., or set TACITLY_DATA)",
        )
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", source=file) from None
    if not isinstance(records, list):
        raise InputError("not a JSON list", source=file, expected="a list of records")
    return [_rated_response(record, file=file, row=row) for row, record in enumerate(records, 1)]


def _rated_response(record: Any, *, file: Path, row: int) -> RatedResponse:
    if not isinstance(record, dict):
        raise InputError("not a JSON object", source=file, row=row)
    question_id = record.get("idx")
    where = f"record idx={question_id}" if question_id is not None else "record"
    instruction = record.get("instruction")
    if not isinstance(instruction, str):
        raise InputError(
            f"{where}: no judge prompt", source=file, row=row, field="instruction", expected="text"
        )
    pair = extract_judged_pair(instruction)
    if pair is None:
        raise InputError(
            f"{where}: cannot cut the question and the response out of the judge prompt",
            source=file,
            row=row,
            field="instruction",
            expected=f"non-empty text after {_QUESTION_HEADING!r} and after "
            f"{_RESPONSE_HEADING!r}, followed by one of {', '.join(_AFTER_RESPONSE)}",
        )
    scores = record.get("gpt4_score")
    if (
        not isinstance(scores, list)
        or not scores
        or not all(type(s) is int and 1 <= s <= 5 for s in scores)
    ):
        raise InputError(
            f"{where}: scores {scores!r}",
            source=file,
            row=row,
            field="gpt4_score",
            expected="a non-empty list of integers from 1 to 5",
        )
    model = record.get("response_source")
    category = record.get("category")
    question, response = pair
    return RatedResponse(
        prompt=[Message(role="user", content=question)],
        response=[Message(role="assistant", content=response)],
        model=None if model is None else str(model),
        question_id=question_id if type(question_id) is int else None,
        category=None if category is None else str(category),
        scores=list(scores),
        score=sum(scores) / len(scores),
        row=row,
    )
