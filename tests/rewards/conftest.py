"""Fixtures of the reward-model tests: a tiny random Llama and ready gaze reward models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tacitly.rewards.gaze import GazeRewardConfig, GazeRewardModel
from tacitly.signals.synthetic.predictor import GazePredictor
from tiny_models import save_tiny_chat_lm

SENTENCES = [
    "Reading is a fascinating activity for people who like words.",
    "The quick brown fox jumps over the lazy dog near the river.",
    "How do I bake bread at home? Mix flour, water, salt and yeast.",
    "Thank you, that answer was exactly what I needed today.",
    "system user assistant",
]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 32) with a byte-level BPE tokenizer and a ChatML template."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_chat_lm(folder, texts=SENTENCES * 4, vocab_size=400)


@pytest.fixture(scope="session")
def predictor() -> GazePredictor:
    return GazePredictor(version=1, cache=None)


@pytest.fixture
def make_model(tiny_lm: Path, predictor: GazePredictor) -> Any:
    def make(mode: str = "concat", **options: Any) -> GazeRewardModel:
        torch.manual_seed(1)
        settings: dict[str, Any] = {"standardise": False, "load_in_4bit": False, **options}
        config = GazeRewardConfig(model_name=str(tiny_lm), mode=mode, **settings)  # type: ignore[arg-type]
        return GazeRewardModel(config, predictor=predictor)

    return make
