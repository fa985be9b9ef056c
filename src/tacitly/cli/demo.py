"""``tacitly demo``: the main job on the embedded defaults.

1. The eye-tracking pipeline on a built-in example: simulated readers read a short answer,
   their 1000 Hz samples go through I-VT, word boxes, reading measures and the reader average,
   and the word measures are put onto the tokens of the embedded SmolLM2 tokenizer inside a
   chat-templated conversation.
2. The reward models (``--reward``, on by default): ``tacitly rm train`` on SmolLM2 with the
   shipped eye-tracking predictor and the embedded pipeline-demo pairs, once as the text-only
   baseline and once as GazeConcat, and a side-by-side table. The demo pairs are a handful of
   sentences written for the project: the accuracies show that the pipeline runs, they are
   not a measurement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console

from tacitly.cli.tables import print_table
from tacitly.signals.gaze import (
    ScreenGeometry,
    aggregate_readers,
    align_conversation,
    detect_fixations_ivt,
    layout_text,
    map_fixations_to_aois,
    reading_measures,
    simulate_reading,
)

# Written for this project; a pipeline demo, not data.
EXAMPLE_QUESTION = "Why do people reread parts of a text?"
EXAMPLE_ANSWER = (
    "Readers go back when a sentence surprises them. A word that does not fit what they "
    "expected, a long clause, or an ambiguous phrase sends the eyes back to check what they "
    "missed. These regressions are short and quick, but they show where a text was hard."
)
# A 24-inch monitor at 1920×1080 seen from 60 cm, a common eye-tracking set-up.
EXAMPLE_SCREEN = ScreenGeometry(
    width_px=1920, height_px=1080, width_cm=53.1, height_cm=29.9, distance_cm=60.0
)

console = Console()


def demo_command(
    readers: Annotated[int, typer.Option(help="Number of simulated readers.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 0,
    tokens: Annotated[bool, typer.Option(help="Also align onto the SmolLM2 tokenizer.")] = True,
    reward: Annotated[
        bool, typer.Option(help="Train baseline and GazeConcat reward models on the demo pairs.")
    ] = True,
    epochs: Annotated[int, typer.Option(help="Reward-model training epochs.")] = 2,
    output_dir: Annotated[
        Path, typer.Option(help="Where the demo reward models and their reports go.")
    ] = Path("runs/demo"),
) -> None:
    """Run the eye-tracking pipeline and the reward models on the embedded defaults."""
    started = time.perf_counter()
    words = layout_text(EXAMPLE_ANSWER, max_width=1000)
    simulation = simulate_reading(words, n_readers=readers, seed=seed)
    fixations = detect_fixations_ivt(
        simulation.samples,
        velocity_threshold=30.0,
        unit="deg",
        geometry=EXAMPLE_SCREEN,
        by=["reader"],
    )
    fixations = map_fixations_to_aois(fixations, words)
    per_reader = reading_measures(fixations, aois=words, by=["reader"])
    per_word = aggregate_readers(per_reader)
    console.print(
        f"[bold]tacitly demo[/]: {readers} simulated readers, "
        f"{simulation.samples.height:,} samples at 1000 Hz → {fixations.height:,} fixations "
        f"(simulated: {simulation.fixations.height:,}) → {per_word.height} words"
    )
    print_table(
        console,
        per_word.select("word_index", "word", "nFix", "FFD", "GPT", "TRT", "fixProp"),
        title="Reading measures per word (mean over readers; ms)",
        max_rows=per_word.height,
        digits=2,
    )
    if tokens:
        _show_tokens(per_word)
    if reward:
        _train_reward_models(epochs=epochs, seed=seed, output_dir=output_dir)
    console.print(f"done in {time.perf_counter() - started:.1f} s")


def _train_reward_models(*, epochs: int, seed: int, output_dir: Path) -> None:
    from tacitly.cli.rewards import TrainPlan, run_training
    from tacitly.rewards.gaze import GazeRewardConfig
    from tacitly.rewards.training import PairwiseTrainingConfig

    console.rule("Reward models on the pipeline-demo pairs (SmolLM2-135M-Instruct + LoRA)")
    results = {}
    for mode in ("baseline", "concat"):
        plan = TrainPlan(
            dataset="demo",
            model_config=GazeRewardConfig(mode=mode, max_length=256),
            training_config=PairwiseTrainingConfig(
                learning_rate=1e-4,
                lr_scheduler_type="cosine_with_min_lr",
                min_lr_ratio=0.7,
                warmup_ratio=0.1,
                batch_size=4,
                epochs=epochs,
                logging_steps=8,
                seed=seed,
                output_dir=str(output_dir / mode),
                overwrite_output_dir=True,
            ),
            max_train_pairs=None,
        )
        results[mode] = run_training(plan).metrics
    rows = [
        {
            "mode": {"baseline": "baseline (text only)", "concat": "GazeConcat"}[mode],
            "val accuracy": metrics["val_accuracy"],
            "test accuracy": metrics["test_accuracy"],
            "n test": metrics["n_test"],
            "train s": metrics["train_seconds"],
            "report": str(output_dir / mode / "metrics.json"),
        }
        for mode, metrics in results.items()
    ]
    print_table(
        console,
        pl.DataFrame(rows),
        title="Baseline vs GazeConcat (pipeline demo: a few hand-written pairs, not a benchmark)",
        digits=3,
    )
    console.print(
        "Point it at real data with e.g. `tacitly rm train -d autoj --concat True "
        "--use_softprompt True -fmv 1` (or -d hh-rlhf, -d path/to/pairs.jsonl), then "
        "`tacitly rm eval --model runs/rm/... --dataset autoj --json`.",
        highlight=False,
    )


def _show_tokens(per_word: pl.DataFrame) -> None:
    from tacitly.backbones import DEFAULT_LM, load_tokenizer

    tokenizer = load_tokenizer()
    conversation = [
        {"role": "user", "content": EXAMPLE_QUESTION},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
    ]
    features = ["nFix", "FFD", "GPT", "TRT", "fixProp"]
    aligned = align_conversation(
        conversation, {1: per_word}, tokenizer, mode="split", features=features
    )
    ids = aligned.input_ids.tolist()
    table = pl.DataFrame(
        {
            "token_index": list(range(len(ids))),
            "token": [repr(tokenizer.decode([i])) for i in ids],
            "role": [
                aligned.roles[m] if m >= 0 else "template" for m in aligned.message_index.tolist()
            ],
        }
    ).with_columns(pl.DataFrame(aligned.values, schema=features, orient="row").get_columns())
    first = int((aligned.message_index == 1).argmax())
    print_table(
        console,
        table.slice(max(0, first - 4), 24),
        title=f"Token features in the chat-templated conversation ({DEFAULT_LM} tokenizer, split)",
        max_rows=24,
        digits=2,
    )
    console.print(
        f"{len(ids)} tokens; template and user tokens carry 0, the answer's "
        f"{int((aligned.message_index == 1).sum())} tokens carry the word measures"
    )
