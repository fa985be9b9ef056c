"""``tacitly gaze train`` and ``tacitly gaze predict``: the eye-tracking predictor."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from tacitly.cli.tables import print_table, write_table
from tacitly.errors import InputError

console = Console()


class SpreadMode(StrEnum):
    SPLIT = "split"
    FIRST = "first"
    MAX = "max"


def train_command(
    corpus: Annotated[
        Path, typer.Option(help="Folder with train.csv and valid.csv (CMCL 2021 format).")
    ],
    version: Annotated[int, typer.Option(help="1: gradient boosting; 2: MiniLM + LoRA.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for weights, metrics, model card.")
    ],
    valid: Annotated[
        Path | None, typer.Option(help="Validation file instead of the folder's valid.csv.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 42,
    members: Annotated[
        int, typer.Option(help="Version 2: members (seeds) trained and averaged.")
    ] = 3,
) -> None:
    """Train the eye-tracking predictor from a CMCL-format corpus."""
    from tacitly.signals.synthetic.training import train_gaze_predictor

    if version not in (1, 2):
        raise InputError(f"unknown version {version}", field="--version", expected="1 or 2")
    metrics = train_gaze_predictor(
        corpus,
        version=1 if version == 1 else 2,
        output=output,
        valid=valid,
        seed=seed,
        members=members,
    )
    rows = [{"model": name, **scores} for name, scores in metrics["mae"].items()]
    print_table(
        console,
        pl.DataFrame(rows),
        title=f"MAE on {Path(metrics['split']['valid']).name} "
        f"({metrics['split']['valid_words']:,} words), seed {seed}",
        digits=3,
    )
    console.print(f"wrote weights, metrics.json and MODEL_CARD.md to {output}")


def _read_jsonl(path: Path, field: str) -> list[tuple[Any, Any]]:
    """(id, text or conversation) per line of a JSON Lines file."""
    if not path.is_file():
        raise InputError("file not found", source=path, expected="a JSON Lines file")
    items: list[tuple[Any, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"not valid JSON: {error.msg}", source=path, row=number) from None
            if isinstance(record, str):
                items.append((number, record))
                continue
            if not isinstance(record, dict):
                raise InputError(
                    "expected an object or a string", source=path, row=number, field=field
                )
            if field in record:
                value = record[field]
            elif "messages" in record:
                value = record["messages"]
            else:
                raise InputError(
                    f'no "{field}" or "messages" field',
                    source=path,
                    row=number,
                    field=field,
                    expected=f'{{"{field}": "..."}} or {{"messages": [...]}}',
                )
            if not isinstance(value, str | list):
                raise InputError(
                    f"expected a string or a list of messages, got {type(value).__name__}",
                    source=path,
                    row=number,
                    field=field,
                )
            items.append((record.get("id", number), value))
    if not items:
        raise InputError("no lines to predict", source=path)
    return items


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def predict_command(
    text: Annotated[str | None, typer.Argument(help="A text to predict.")] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help='JSON Lines: {"text": ...} or {"messages": [...]} per line.'),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Parquet or CSV output.")
    ] = None,
    version: Annotated[int, typer.Option(help="1: gradient boosting; 2: MiniLM + LoRA.")] = 1,
    weights: Annotated[
        Path | None, typer.Option(help="Weights folder [default: shipped with tacitly].")
    ] = None,
    field: Annotated[str, typer.Option(help="Field of the JSON objects holding the text.")] = (
        "text"
    ),
    tokens: Annotated[bool, typer.Option(help="Token-level output through a tokenizer.")] = False,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer for --tokens [default: embedded SmolLM2].")
    ] = None,
    mode: Annotated[SpreadMode, typer.Option(help="How word values go onto tokens.")] = (
        SpreadMode.SPLIT
    ),
    cache: Annotated[bool, typer.Option(help="Use the result cache keyed by text hash.")] = True,
    batch_size: Annotated[int, typer.Option(help="Texts per prediction batch.")] = 256,
) -> None:
    """Predict reading measures (nFix, FFD, GPT, TRT, fixProp) for texts."""
    from tacitly.signals.synthetic import GazePredictor

    if (text is None) == (input_file is None):
        raise InputError("give a TEXT or --input FILE (one of them)", field="TEXT/--input")
    if version not in (1, 2):
        raise InputError(f"unknown version {version}", field="--version", expected="1 or 2")
    if batch_size < 1:
        raise InputError("must be at least 1", field="--batch-size")
    items = [(0, text)] if text is not None else _read_jsonl(Path(str(input_file)), field)
    options: dict[str, Any] = {} if cache else {"cache": None}
    predictor = GazePredictor(1 if version == 1 else 2, weights=weights, **options)
    if tokens:
        table = _token_table(predictor, items, tokenizer, mode.value, batch_size)
    else:
        table = _word_table(predictor, items, batch_size)
    console.print(
        f"{len(items):,} text(s) → {table.height:,} {'tokens' if tokens else 'words'} "
        f"(version {version})"
    )
    if output is None:
        shown = table if text is None else table.drop("id")
        print_table(console, shown, title="predicted reading measures", digits=2)
    else:
        write_table(table, output)
        console.print(f"wrote {output}")


def _word_table(predictor: Any, items: list[tuple[Any, Any]], batch_size: int) -> pl.DataFrame:
    frames: list[pl.DataFrame] = []
    with _progress() as progress:
        task = progress.add_task("predicting", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            texts = []
            for offset, (_, value) in enumerate(batch):
                if not isinstance(value, str):
                    raise InputError(
                        "word-level output needs a text; use --tokens for conversations",
                        row=start + offset + 1,
                    )
                texts.append(value)
            table = predictor.predict(texts)
            ids = pl.Series([str(item_id) for item_id, _ in batch])
            frames.append(
                table.with_columns(pl.col("text_id").replace_strict(range(len(ids)), ids)).rename(
                    {"text_id": "id"}
                )
            )
            progress.advance(task, len(batch))
    return pl.concat(frames)


def _token_table(
    predictor: Any,
    items: list[tuple[Any, Any]],
    tokenizer_name: str | None,
    mode: str,
    batch_size: int,
) -> pl.DataFrame:
    from tacitly.backbones import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    measures = list(predictor.measures)
    frames: list[pl.DataFrame] = []
    with _progress() as progress:
        task = progress.add_task("predicting", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            aligned = predictor.predict_tokens([value for _, value in batch], tokenizer, mode=mode)
            for (item_id, _), result in zip(batch, aligned, strict=True):
                ids = np.asarray(result.input_ids).tolist()
                frames.append(
                    pl.DataFrame(
                        {
                            "id": [str(item_id)] * len(ids),
                            "token_index": list(range(len(ids))),
                            "token_id": ids,
                            "token": tokenizer.convert_ids_to_tokens(ids),
                        }
                    ).with_columns(
                        pl.DataFrame(
                            np.asarray(result.values), schema=measures, orient="row"
                        ).get_columns()
                    )
                )
            progress.advance(task, len(batch))
    return pl.concat(frames)
