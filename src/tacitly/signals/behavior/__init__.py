"""Implicit behaviour of people comparing two answers side by side (IFllm layout).

Traces are cut into one segment per question (:mod:`.segments`), turned into per-question,
per-answer and per-modality features (:mod:`.features`), and gathered over a whole folder into
one feature table (:mod:`.table`). :mod:`.split` divides a folder into two whose workers are
disjoint, for held-out evaluation.
"""

from tacitly.signals.behavior.features import (
    STREAM_MEASURES,
    fixation_features,
    mirror_features,
    question_features,
    stream_features,
    text_features,
)
from tacitly.signals.behavior.segments import PAIRWISE_KINDS, SEGMENT_SCHEMA, segment_task
from tacitly.signals.behavior.split import WorkerSplit, split_by_worker
from tacitly.signals.behavior.table import (
    ID_COLUMNS,
    TEXT_COLUMNS,
    build_feature_table,
    feature_columns,
    load_segments,
    read_pairwise_questions,
)

__all__ = [
    "ID_COLUMNS",
    "PAIRWISE_KINDS",
    "SEGMENT_SCHEMA",
    "STREAM_MEASURES",
    "TEXT_COLUMNS",
    "WorkerSplit",
    "build_feature_table",
    "feature_columns",
    "fixation_features",
    "load_segments",
    "mirror_features",
    "question_features",
    "read_pairwise_questions",
    "segment_task",
    "split_by_worker",
    "stream_features",
    "text_features",
]
