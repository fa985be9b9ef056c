"""``tacitly score``: any reward over a large JSON Lines file, resumable, optionally on Ray.

::

    tacitly score --reward rm:runs/rm/demo-concat-seed42 --input big.jsonl --output scores.parquet
    tacitly score --reward flr --input big.jsonl --output scores.parquet --ray

The input and output formats and how an interrupted run resumes are described in
:mod:`tacitly.scoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tacitly.errors import InputError
from tacitly.scoring import Reward, ScoreSummary, read_scores, reward_from_spec, score_file

__all__ = ["score_command"]

console = Console()

_PARQUET = (".parquet", ".pq")


def score_command(
    reward: Annotated[
        str,
        typer.Option(
            "--reward", "-r", help="flr (follow-up likelihood) or rm:PATH (a saved reward model)."
        ),
    ],
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help='JSON Lines (.gz too): {"prompt", "response"} or {"prompt", "chosen", '
            '"rejected"} per line.',
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Parquet file of scores (one row per line).")
    ],
    batch_size: Annotated[
        int, typer.Option("--batch_size", help="Rows per call of the reward.")
    ] = 32,
    chunk_size: Annotated[
        int, typer.Option("--chunk_size", help="Rows per saved part: the most a crash loses.")
    ] = 4096,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Score on Ray Data with one model per actor.")
    ] = False,
    actors: Annotated[
        int | None,
        typer.Option("--actors", help="Ray actors (default: the cluster's GPUs, else its CPUs)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume", help="Skip rows already in the output / start afresh."
        ),
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Score every line of a JSON Lines file with a reward; resumable, optionally on Ray."""
    if output.suffix.lower() not in _PARQUET:
        raise InputError(
            f"unknown output type {output.suffix!r}",
            source=output,
            field="--output",
            expected=".parquet",
        )
    # Ray builds the reward inside each actor from its spec (score_file checks the spec first)
    scorer: Reward | str = reward if use_ray else reward_from_spec(reward)
    summary = score_file(
        scorer,
        input_file,
        output,
        batch_size=batch_size,
        chunk_size=chunk_size,
        resume=resume,
        progress=progress,
        use_ray=use_ray,
        actors=actors,
    )
    _print_summary(summary, reward=reward, source=input_file)


def _print_summary(summary: ScoreSummary, *, reward: str, source: Path) -> None:
    table = Table(title=f"scores · {reward}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("input", f"{source} ({summary.total:,} {summary.form} rows)")
    table.add_row("scored now", f"{summary.scored:,}")
    table.add_row("already there", f"{summary.skipped:,}")
    speed = summary.scored / summary.seconds if summary.seconds > 0 else 0.0
    table.add_row("time", f"{summary.seconds:.2f} s ({speed:,.1f} rows/s)")
    column = "reward" if summary.form == "response" else "reward_margin"
    values = read_scores(summary.output)[column].to_numpy()
    finite = values[np.isfinite(values)]
    table.add_row(f"{column} mean", f"{finite.mean():.4f}" if finite.size else "—")
    table.add_row("output", str(summary.output))
    console.print(table)
