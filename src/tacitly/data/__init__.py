"""Preference data: one schema (TRL's conversational preference rows), one builder per source.

Every builder returns a :class:`PreferenceDataset` with deterministic ``train``,
``validation`` and ``test`` splits in which a group (a prompt, a worker, a conversation tree)
never crosses splits, and a record of every source row it dropped and why.

======================  ====================================================================
name                    builder
======================  ====================================================================
``autoj``               :func:`load_autoj`: Auto-J pairwise (shared data); ties dropped
``hh-rlhf``             :func:`load_hh_rlhf`: Anthropic HH-RLHF transcripts (shared data)
``helpsteer2``          :func:`load_helpsteer2`: nvidia/HelpSteer2 (local copy, cache or hub)
``oasst1``              :func:`load_oasst1`: OpenAssistant/oasst1 (local copy, cache or hub)
``ifllm``               :func:`load_ifllm`: IFllm pairwise questions (shared data)
``demo``                :func:`load_demo`: embedded pipeline demo written by the developers
a path                  :func:`read_preference_file`: the user's JSONL/JSON/Parquet/CSV
======================  ====================================================================

Examples
--------
>>> from tacitly.data import load_preferences
>>> demo = load_preferences("demo")
>>> sorted(demo.rows[0])
['chosen', 'margin', 'meta', 'prompt', 'rejected', 'weight']
"""

from tacitly.data.demo import load_demo
from tacitly.data.files import read_preference_file
from tacitly.data.hub import load_helpsteer2, load_oasst1
from tacitly.data.load import DATASET_NAMES, load_preferences
from tacitly.data.local import data_root, load_autoj, load_hh_rlhf, load_ifllm
from tacitly.data.ratings import RatedResponse, extract_judged_pair, load_vicuna_ratings
from tacitly.data.schema import (
    SPLITS,
    DroppedRow,
    Message,
    PreferenceDataset,
    PreferenceRow,
    grouped_split,
    make_row,
)

__all__ = [
    "DATASET_NAMES",
    "SPLITS",
    "DroppedRow",
    "Message",
    "PreferenceDataset",
    "PreferenceRow",
    "RatedResponse",
    "data_root",
    "extract_judged_pair",
    "grouped_split",
    "load_autoj",
    "load_demo",
    "load_helpsteer2",
    "load_hh_rlhf",
    "load_ifllm",
    "load_oasst1",
    "load_preferences",
    "load_vicuna_ratings",
    "make_row",
    "read_preference_file",
]
