"""``tacitly demo``: the main job on the embedded defaults.

Until the reward models exist, the demo runs the whole eye-tracking pipeline on a built-in
example: simulated readers read a short answer, their 1000 Hz samples go through I-VT, word
boxes, reading measures and the reader average, and the word measures are put onto the tokens
of the embedded SmolLM2 tokenizer inside a chat-templated conversation.
"""

from __future__ import annotations

import time
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
) -> None:
    """Run the eye-tracking pipeline on a built-in example and print its tables."""
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
    console.print(f"done in {time.perf_counter() - started:.1f} s")


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
