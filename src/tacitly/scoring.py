"""Batch scoring: any reward over a large JSON Lines file, resumable, on one process or on Ray.

:func:`score_file` is the pipeline's ``rewards`` stage applied to files (``tacitly score``).

Input
    JSON Lines (optionally ``.gz``). Every line is an object with ``prompt`` (a string or a
    list of ``{"role", "content"}`` messages; may be empty) and either ``response`` or both
    ``chosen`` and ``rejected`` (non-empty strings or lists of messages); all lines have the
    same form. Strings become one-message conversations (user prompt, assistant response)
    before they reach the reward. Blank lines are skipped. A bad line stops the run before
    anything is scored: the whole file is checked first, and the error names file, line and
    field.

Output
    One Parquet file (polars), sorted by ``row``:

    - ``row``: the line number in the input (1-based), the key of resumption;
    - every top-level field of the line whose value is a string, number or boolean (``id``,
      ``subset``, ``model``, ...), unchanged; a field whose values mix types across lines
      becomes text. A field that clashes with an output column is renamed ``input_<name>``.
      Lists and objects (``meta``) are not carried.
    - scores as float64: ``reward`` for ``response`` lines; ``chosen_reward``,
      ``rejected_reward`` and ``reward_margin`` (chosen − rejected) for pairs. A NaN from the
      reward is kept as NaN.

Resumption
    While it runs, scored rows go in chunks of ``chunk_size`` to part files in
    ``<output>.parts/`` (each written to a temporary name and renamed, so a part is whole or
    absent). When every row is scored, the parts and any earlier output are merged into
    ``<output>`` (again written aside and renamed) and the folder is removed. A later run with
    ``resume=True`` skips every row already in ``<output>`` or in a part, so an interrupted run
    loses at most the chunk in flight and never scores a row twice. Each file records the
    reward and the input form in its Parquet metadata; resuming with another reward or form is
    an error rather than a silent mix. ``resume=False`` deletes earlier results first. Two runs
    must not write the same output at once.

Ray
    With ``use_ray=True`` the rows still to score go to a Ray Data dataset, and
    ``map_batches`` runs a pool of actors, each holding one reward (built in the actor from a
    spec such as ``"rm:runs/rm/demo"``, or unpickled from the object passed), with one GPU per
    actor when the cluster has GPUs and ``cpus_per_actor`` CPUs otherwise. The driver reads the
    file, streams the scored batches back and writes the same part files, so the output is
    the same file with the same scores as on one process (up to the reward's own numerical
    differences between batch compositions, e.g. padding).
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import inspect
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from tacitly.errors import InputError

__all__ = [
    "BEST_MODEL_DIR",
    "METADATA_KEY",
    "MODEL_CONFIG_NAME",
    "RayScorer",
    "Reward",
    "ScoreSummary",
    "check_reward_spec",
    "read_scores",
    "reward_from_spec",
    "reward_label",
    "score_file",
]

StrPath = str | PathLike[str]
Form = Literal["response", "pair"]

#: Parquet metadata key recording which reward and which input form wrote a file.
METADATA_KEY = "tacitly.scoring"
_SIDES: dict[Form, tuple[str, ...]] = {"response": ("response",), "pair": ("chosen", "rejected")}
_SCORE_COLUMNS: dict[Form, tuple[str, ...]] = {
    "response": ("reward",),
    "pair": ("chosen_reward", "rejected_reward", "reward_margin"),
}
_CONVERSATION_FIELDS = frozenset({"prompt", "response", "chosen", "rejected"})
_RESERVED = frozenset({"row", "reward", "chosen_reward", "rejected_reward", "reward_margin"})
_PART_GLOB = "part-*.parquet"
# rewards.gaze.CONFIG_NAME and rewards.training.BEST_DIR, written out so that checking a spec
# does not import torch (a test keeps them equal)
MODEL_CONFIG_NAME = "config.json"
BEST_MODEL_DIR = "best"


class Reward(Protocol):
    """Anything that scores responses: one float per (prompt, response)."""

    def score(self, prompts: Sequence[Any], responses: Sequence[Any]) -> Any:
        """One score per pair, as an array-like of floats."""
        ...


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_file` did.

    Attributes
    ----------
    output:
        The Parquet file written.
    form:
        ``"response"`` or ``"pair"``.
    total:
        Rows (non-blank lines) in the input.
    scored:
        Rows scored by this run.
    skipped:
        Rows found already scored (resumption).
    seconds:
        Wall time of this run.
    """

    output: Path
    form: Form
    total: int
    scored: int
    skipped: int
    seconds: float


# --------------------------------------------------------------------------------------------
# rewards from a spec


def reward_from_spec(spec: str) -> Reward:
    """Build a reward from its name on the command line.

    ``flr`` is :class:`tacitly.rewards.followup.FollowupReward` with its defaults; ``rm:PATH``
    a gaze reward model saved by ``tacitly rm train`` (the model folder, or a training run
    folder with ``best/``), moved to the GPU when there is one.

    Raises
    ------
    InputError
        If the spec is unknown, the model folder holds no model, or the reward's module
        cannot be imported (naming the missing piece).

    Examples
    --------
    >>> reward_from_spec("bleu")
    Traceback (most recent call last):
        ...
    tacitly.errors.InputError: field "--reward": unknown reward 'bleu' (expected flr or rm:PATH)
    """
    text = spec.strip()
    if text.lower() == "flr":
        try:
            # looked up by name so that this module does not depend on the reward's types
            followup: Any = importlib.import_module("tacitly.rewards.followup")
        except ImportError as error:
            raise InputError(
                f"the follow-up likelihood reward cannot be loaded ({error})",
                field="--reward",
                expected="tacitly.rewards.followup and its dependencies (pip install "
                "'tacitly[models]')",
            ) from None
        reward: Reward = followup.FollowupReward()
        return reward
    if text.startswith("rm:") and text[3:].strip():
        return _gaze_reward_model(Path(text[3:].strip()))
    raise InputError(f"unknown reward {spec!r}", field="--reward", expected="flr or rm:PATH")


def check_reward_spec(spec: str) -> None:
    """Check a spec without building the reward (no model is loaded).

    Raises
    ------
    InputError
        As :func:`reward_from_spec` would for an unknown spec, a folder without a saved model,
        or a reward module that is not installed.

    Examples
    --------
    >>> check_reward_spec("rm:/no/such/folder")
    Traceback (most recent call last):
        ...
    tacitly.errors.InputError: /no/such/folder, field "--reward": no such model folder
    """
    text = spec.strip()
    if text.lower() == "flr":
        if importlib.util.find_spec("tacitly.rewards.followup") is None:
            raise InputError(
                "the follow-up likelihood reward is not installed",
                field="--reward",
                expected="tacitly.rewards.followup",
            )
        return
    if text.startswith("rm:") and text[3:].strip():
        _model_folder(Path(text[3:].strip()))
        return
    raise InputError(f"unknown reward {spec!r}", field="--reward", expected="flr or rm:PATH")


def reward_label(reward: Reward | str) -> str:
    """The name a reward is recorded under in the output (a spec, or the reward's class).

    Examples
    --------
    >>> reward_label(" FLR ")
    'flr'
    """
    if isinstance(reward, str):
        text = reward.strip()
        if text.startswith("rm:"):
            return "rm:" + str(Path(text[3:].strip()).resolve())
        return text.lower()
    kind = type(reward)
    return f"{kind.__module__}.{kind.__qualname__}"


def _model_folder(folder: Path) -> Path:
    """The folder holding a saved reward model: ``folder`` or its ``best/``."""
    config, best = MODEL_CONFIG_NAME, BEST_MODEL_DIR
    if not folder.is_dir():
        raise InputError("no such model folder", source=folder, field="--reward")
    if not (folder / config).is_file() and (folder / best / config).is_file():
        return folder / best
    if not (folder / config).is_file():
        raise InputError(
            "no saved reward model here",
            source=folder,
            field="--reward",
            expected=f"a folder with {config} (a model, or a training run with {best}/)",
        )
    return folder


def _gaze_reward_model(folder: Path) -> Reward:
    import torch

    from tacitly.rewards.gaze import GazeRewardModel

    folder = _model_folder(folder)
    model = GazeRewardModel.from_pretrained(folder)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model


# --------------------------------------------------------------------------------------------
# reading and checking the input


@dataclass(frozen=True)
class _Record:
    row: int
    prompt: list[dict[str, str]]
    sides: tuple[list[dict[str, str]], ...]
    identity: dict[str, Any]


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _parse(line: bytes | str, *, row: int, source: Path, form: Form | None) -> _Record:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        raise InputError(f"not valid JSON: {reason}", source=source, row=row) from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", source=source, row=row)
    found: Form = "response" if "response" in record else "pair"
    if found == "pair" and not ("chosen" in record or "rejected" in record):
        raise InputError(
            'no "response" (or "chosen" and "rejected")',
            source=source,
            row=row,
            field="response",
            expected='{"prompt": ..., "response": ...} or {"prompt", "chosen", "rejected"}',
        )
    if form is not None and found != form:
        raise InputError(
            "lines mix single responses and preference pairs",
            source=source,
            row=row,
            expected='every line with "response", or every line with "chosen" and "rejected"',
        )
    prompt = _conversation(
        record.get("prompt"), role="user", source=source, row=row, field="prompt"
    )
    sides = tuple(
        _conversation(record.get(side), role="assistant", source=source, row=row, field=side)
        for side in _SIDES[found]
    )
    identity = {
        (f"input_{key}" if key in _RESERVED else key): value
        for key, value in record.items()
        if key not in _CONVERSATION_FIELDS and _is_scalar(value)
    }
    return _Record(row=row, prompt=prompt, sides=sides, identity=identity)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _conversation(
    value: object, *, role: str, source: Path, row: int, field: str
) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            if field == "prompt":
                return []
            raise InputError("is empty", source=source, row=row, field=field)
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value:
        for index, message in enumerate(value):
            if not (
                isinstance(message, dict)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise InputError(
                    "each message needs a string role and content",
                    source=source,
                    row=row,
                    field=f"{field}[{index}]",
                    expected='{"role": str, "content": str}',
                )
        return [{"role": m["role"], "content": m["content"]} for m in value]
    if isinstance(value, list) and field == "prompt":
        return []
    raise InputError(
        "missing" if value is None else f"a {type(value).__name__}",
        source=source,
        row=row,
        field=field,
        expected="a string or a non-empty list of messages",
    )


def _check_input(path: Path) -> tuple[Form, int, int]:
    """Check every line; the form, the number of rows and the last row's line number."""
    if not path.is_file():
        raise InputError("file not found", source=path, field="--input")
    form: Form | None = None
    count = 0
    last = 0
    for number, line in _raw_lines(path):
        record = _parse(line, row=number, source=path, form=form)
        form = "response" if len(record.sides) == 1 else "pair"
        count += 1
        last = number
    if form is None:
        raise InputError("no lines to score", source=path, field="--input")
    return form, count, last


# --------------------------------------------------------------------------------------------
# scoring a batch, and the table it becomes


def _call_score(reward: Reward, prompts: list[Any], responses: list[Any], batch_size: int) -> Any:
    method: Callable[..., Any] = reward.score
    try:
        accepts_batch_size = "batch_size" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        accepts_batch_size = False
    if accepts_batch_size:
        return method(prompts, responses, batch_size=batch_size)
    return method(prompts, responses)


def _score_records(
    reward: Reward, records: Sequence[_Record], *, form: Form, batch_size: int
) -> dict[str, npt.NDArray[np.float64]]:
    """Score columns of a batch; both sides of pairs go to the reward in one call."""
    sides = len(_SIDES[form])
    prompts = [record.prompt for record in records] * sides
    responses = [record.sides[side] for side in range(sides) for record in records]
    raw = _call_score(reward, prompts, responses, batch_size)
    scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    if scores.size != len(responses):
        raise InputError(
            f"the reward returned {scores.size} scores for {len(responses)} responses",
            field="reward",
            expected="one score per response",
        )
    if form == "response":
        return {"reward": scores}
    chosen, rejected = scores[: len(records)], scores[len(records) :]
    return {
        "chosen_reward": chosen,
        "rejected_reward": rejected,
        "reward_margin": chosen - rejected,
    }


def _identity_columns(identities: Sequence[Mapping[str, Any]]) -> dict[str, pl.Series]:
    names: dict[str, None] = {}
    for identity in identities:
        names.update(dict.fromkeys(identity))
    columns = {}
    for name in names:
        values = [identity.get(name) for identity in identities]
        kinds = {type(value) for value in values if value is not None}
        if kinds <= {int} or kinds <= {float, int} or kinds == {str} or kinds == {bool}:
            columns[name] = pl.Series(name, values)
        else:
            columns[name] = pl.Series(
                name,
                [
                    None if v is None else json.dumps(v) if not isinstance(v, str) else v
                    for v in values
                ],
                dtype=pl.String,
            )
    return columns


def _frame(
    rows: Sequence[int],
    identities: Sequence[Mapping[str, Any]],
    scores: Mapping[str, npt.NDArray[np.float64]],
) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series("row", list(rows), dtype=pl.Int64),
            *_identity_columns(identities).values(),
            *(pl.Series(name, values, dtype=pl.Float64) for name, values in scores.items()),
        ]
    )


# --------------------------------------------------------------------------------------------
# the output: part files, merging, metadata


class _Output:
    """The final Parquet file and the folder of part files next to it."""

    def __init__(self, path: Path, *, label: str, form: Form) -> None:
        self.path = path
        self.parts = path.with_name(path.name + ".parts")
        self.metadata = {METADATA_KEY: json.dumps({"reward": label, "form": form, "version": 1})}
        self.label = label
        self.form = form

    def files(self) -> list[Path]:
        earlier = [self.path] if self.path.is_file() else []
        return earlier + (sorted(self.parts.glob(_PART_GLOB)) if self.parts.is_dir() else [])

    def discard(self) -> None:
        if self.parts.is_dir():
            shutil.rmtree(self.parts)
        self.path.unlink(missing_ok=True)

    def done_rows(self, *, last_row: int) -> npt.NDArray[np.bool_]:
        """``done[line]`` is True for every line already scored (a mask, not a set: small for
        millions of rows)."""
        done = np.zeros(last_row + 1, dtype=bool)
        for file in self.files():
            self._check_compatible(file)
            rows = pl.read_parquet(file, columns=["row"])["row"].to_numpy()
            if rows.size and int(rows.max()) > last_row:
                raise InputError(
                    f"the output holds row {int(rows.max())}, but the input ends at line "
                    f"{last_row}",
                    source=self.path,
                    field="--output",
                    expected="an output written from this input (or --no-resume)",
                )
            done[rows] = True
        return done

    def _check_compatible(self, file: Path) -> None:
        try:
            recorded = json.loads(pl.read_parquet_metadata(file).get(METADATA_KEY, "null"))
        except (OSError, pl.exceptions.PolarsError, json.JSONDecodeError) as error:
            raise InputError(f"unreadable earlier output ({error})", source=file) from None
        if not isinstance(recorded, dict):
            raise InputError(
                "not written by tacitly score",
                source=file,
                field="--output",
                expected="a new output path, or --no-resume to replace it",
            )
        for key, wanted in (("form", self.form), ("reward", self.label)):
            if recorded.get(key) != wanted:
                raise InputError(
                    f"earlier results have {key} {recorded.get(key)!r}, this run {wanted!r}",
                    source=file,
                    field="--output",
                    expected="the same reward and input as before, or --no-resume",
                )

    def write_part(self, frame: pl.DataFrame) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.stem.split("-")[1]) for p in self.parts.glob(_PART_GLOB)]
        target = self.parts / f"part-{max(numbers, default=-1) + 1:06d}.parquet"
        self._write(frame, target)

    def merge(self) -> None:
        """Fold the parts into the output file (nothing to do when there are none)."""
        if not self.parts.is_dir() and self.path.is_file():
            return
        frames = [pl.read_parquet(file) for file in self.files()]
        merged = (
            pl.concat(frames, how="diagonal_relaxed")
            .unique(subset="row", keep="first", maintain_order=True)
            .sort("row")
        )
        columns = [c for c in merged.columns if c not in _SCORE_COLUMNS[self.form]]
        merged = merged.select(*columns, *_SCORE_COLUMNS[self.form])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(merged, self.path)
        if self.parts.is_dir():
            shutil.rmtree(self.parts)

    def _write(self, frame: pl.DataFrame, target: Path) -> None:
        temporary = target.with_name(target.name + ".tmp")
        frame.write_parquet(temporary, metadata=self.metadata)
        os.replace(temporary, target)


# --------------------------------------------------------------------------------------------
# the two runners


def score_file(
    reward: Reward | str,
    input_path: StrPath,
    output_path: StrPath,
    *,
    batch_size: int = 32,
    chunk_size: int = 4096,
    resume: bool = True,
    progress: bool = True,
    use_ray: bool = False,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
) -> ScoreSummary:
    """Score every row of a JSON Lines file with a reward; write (or complete) a Parquet file.

    See the module docstring for the input and output formats and how resumption works.

    Parameters
    ----------
    reward:
        An object with ``score(prompts, responses)``, or a spec for :func:`reward_from_spec`
        (``"flr"``, ``"rm:PATH"``). With Ray, a spec is built inside each actor; an object is
        pickled to each actor.
    input_path:
        The JSON Lines file (``.gz`` allowed).
    output_path:
        The Parquet file to write.
    batch_size:
        Rows per call of ``reward.score`` (pairs: both sides of ``batch_size`` rows in one
        call), also passed as the reward's own ``batch_size`` when it takes one
        (default: 32).
    chunk_size:
        Rows per part file, the most an interruption loses (default: 4096).
    resume:
        Skip the rows that earlier runs wrote to ``output_path``; False deletes them first
        (default: True).
    progress:
        Show a progress bar on stderr (default: True).
    use_ray:
        Score on Ray Data with an actor pool (default: False). Connects to the running Ray
        (``RAY_ADDRESS``), or starts a local one.
    actors:
        Actors in the pool (default: None, the cluster's GPUs, else its CPUs divided by
        ``cpus_per_actor``).
    cpus_per_actor:
        CPUs each actor reserves when the cluster has no GPU (default: 1.0).

    Returns
    -------
    ScoreSummary

    Raises
    ------
    InputError
        For a missing, empty or malformed input (naming file, line and field), a bad option,
        or earlier results from another reward or input form.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> class Length:
    ...     def score(self, prompts, responses):
    ...         return [len(r[-1]["content"]) for r in responses]
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.jsonl").write_text(
    ...     json.dumps({"id": "a", "prompt": "Hi", "chosen": "Hello!", "rejected": "Yo"}) + "\\n")
    >>> summary = score_file(Length(), folder / "in.jsonl", folder / "out.parquet", progress=False)
    >>> summary.scored, read_scores(folder / "out.parquet").row(0)
    (1, (1, 'a', 6.0, 2.0, 4.0))
    """
    source, target = Path(input_path), Path(output_path)
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if value < 1:
            raise InputError(f"is {value}", field=f"--{name}", expected="an integer >= 1")
    if actors is not None and actors < 1:
        raise InputError(f"is {actors}", field="--actors", expected="an integer >= 1")
    if target.resolve() == source.resolve():
        raise InputError("is the input file", source=target, field="--output")
    started = time.perf_counter()
    if isinstance(reward, str):
        check_reward_spec(reward)
    form, total, last_row = _check_input(source)
    output = _Output(target, label=reward_label(reward), form=form)
    if not resume:
        output.discard()
    done = output.done_rows(last_row=last_row)
    skipped = int(done.sum())
    pending = total - skipped
    with _Progress(
        total=pending, enabled=progress and pending > 0, label=f"scoring {source.name}"
    ) as bar:
        if use_ray:
            _score_on_ray(
                reward,
                source,
                output,
                done=done,
                batch_size=batch_size,
                chunk_size=chunk_size,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                advance=bar.advance,
            )
        else:
            built = reward_from_spec(reward) if isinstance(reward, str) else reward
            _score_here(
                built,
                source,
                output,
                done=done,
                batch_size=batch_size,
                chunk_size=chunk_size,
                advance=bar.advance,
            )
    output.merge()
    return ScoreSummary(
        output=target,
        form=form,
        total=total,
        scored=pending,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


def read_scores(path: StrPath) -> pl.DataFrame:
    """Read an output of :func:`score_file`.

    Raises
    ------
    InputError
        If the file is missing.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", source=file)
    return pl.read_parquet(file)


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, *, total: int, enabled: bool, label: str) -> None:
        self.total = total
        self.enabled = enabled
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, rows)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _pending_records(source: Path, form: Form, done: npt.NDArray[np.bool_]) -> Iterator[_Record]:
    for number, line in _raw_lines(source):
        if not done[number]:
            yield _parse(line, row=number, source=source, form=form)


def _score_here(
    reward: Reward,
    source: Path,
    output: _Output,
    *,
    done: npt.NDArray[np.bool_],
    batch_size: int,
    chunk_size: int,
    advance: Callable[[int], None],
) -> None:
    chunk: list[pl.DataFrame] = []
    chunk_rows = 0
    batch: list[_Record] = []

    def flush_batch() -> None:
        nonlocal chunk_rows
        scores = _score_records(reward, batch, form=output.form, batch_size=batch_size)
        chunk.append(_frame([r.row for r in batch], [r.identity for r in batch], scores))
        chunk_rows += len(batch)
        advance(len(batch))
        batch.clear()

    def flush_chunk() -> None:
        nonlocal chunk_rows
        output.write_part(pl.concat(chunk, how="diagonal_relaxed"))
        chunk.clear()
        chunk_rows = 0

    for record in _pending_records(source, output.form, done):
        batch.append(record)
        if len(batch) == batch_size:
            flush_batch()
            if chunk_rows >= chunk_size:
                flush_chunk()
    if batch:
        flush_batch()
    if chunk:
        flush_chunk()


class RayScorer:
    """The Ray Data actor: builds (or unpickles) one reward and scores batches of lines.

    A batch holds ``row`` (line numbers) and ``line`` (the JSON text); the result holds
    ``row``, ``identity`` (the carried fields as JSON text), ``error`` (empty, or an
    :class:`InputError`'s fields as JSON for the driver to raise) and the score columns.
    """

    def __init__(self, reward: Reward | str, form: Form, source: str, batch_size: int) -> None:
        self.reward = reward_from_spec(reward) if isinstance(reward, str) else reward
        self.form: Form = form
        self.source = Path(source)
        self.batch_size = batch_size

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        try:
            records = [
                _parse(str(line), row=int(row), source=self.source, form=self.form)
                for row, line in zip(batch["row"], batch["line"], strict=True)
            ]
            scores = _score_records(
                self.reward, records, form=self.form, batch_size=self.batch_size
            )
        except InputError as error:
            # Ray would hand the driver only its own wrapper and a traceback; send the error
            # back as data so that the driver raises it as it was
            return self._failure(batch, error)
        return {
            "row": np.array([record.row for record in records], dtype=np.int64),
            "identity": np.array([json.dumps(record.identity) for record in records]),
            "error": np.full(len(records), ""),
            **scores,
        }

    def _failure(self, batch: Mapping[str, Any], error: InputError) -> dict[str, Any]:
        fields = {
            "message": error.message,
            "source": error.source,
            "row": error.row,
            "field": error.field,
            "expected": error.expected,
        }
        return {
            "row": np.asarray(batch["row"], dtype=np.int64)[:1],
            "identity": np.array(["{}"]),
            "error": np.array([json.dumps(fields)]),
            **{name: np.array([np.nan]) for name in _SCORE_COLUMNS[self.form]},
        }


def _score_on_ray(
    reward: Reward | str,
    source: Path,
    output: _Output,
    *,
    done: npt.NDArray[np.bool_],
    batch_size: int,
    chunk_size: int,
    actors: int | None,
    cpus_per_actor: float,
    advance: Callable[[int], None],
) -> None:
    try:
        # untyped here: Ray is an optional dependency (the ``scale`` extra)
        ray: Any = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as error:
        raise InputError(
            f"Ray is not installed ({error})",
            field="--ray",
            expected="pip install 'tacitly[scale]' (ray[data])",
        ) from None
    items = [
        {"row": number, "line": line.decode("utf-8")}
        for number, line in _raw_lines(source)
        if not done[number]
    ]
    if not items:
        return
    if not ray.is_initialized():
        ray.init()
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    size = actors or (gpus or max(1, math.floor(resources.get("CPU", 1) / cpus_per_actor)))
    placement: dict[str, float] = {"num_gpus": 1} if gpus else {"num_cpus": cpus_per_actor}
    context = ray.data.DataContext.get_current()
    shown = context.enable_progress_bars
    context.enable_progress_bars = False
    try:
        scored = ray.data.from_items(items).map_batches(
            RayScorer,
            fn_constructor_kwargs={
                "reward": reward,
                "form": output.form,
                "source": str(source),
                "batch_size": batch_size,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(size, len(items))),
            **placement,
        )
        _collect(
            scored.iter_batches(batch_size=None, batch_format="numpy"), output, chunk_size, advance
        )
    finally:
        context.enable_progress_bars = shown


def _collect(
    batches: Iterator[Mapping[str, Any]],
    output: _Output,
    chunk_size: int,
    advance: Callable[[int], None],
) -> None:
    """Write the batches that come back from Ray as part files of about ``chunk_size`` rows."""
    frames: list[pl.DataFrame] = []
    rows = 0
    score_names = _SCORE_COLUMNS[output.form]
    for batch in batches:
        failures = [text for text in batch["error"] if text]
        if failures:
            raise InputError(**json.loads(failures[0]))
        identities = [json.loads(text) for text in batch["identity"]]
        scores = {name: np.asarray(batch[name], dtype=np.float64) for name in score_names}
        frames.append(_frame(np.asarray(batch["row"]).tolist(), identities, scores))
        rows += len(identities)
        advance(len(identities))
        if rows >= chunk_size:
            output.write_part(pl.concat(frames, how="diagonal_relaxed"))
            frames, rows = [], 0
    if frames:
        output.write_part(pl.concat(frames, how="diagonal_relaxed"))
