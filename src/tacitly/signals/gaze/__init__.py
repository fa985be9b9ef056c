"""Eye tracking from raw samples to token-level reading measures.

The steps follow the data: :mod:`~tacitly.signals.gaze.readers` (files in) →
:mod:`~tacitly.signals.gaze.fixations` (I-VT / I-DT) → :mod:`~tacitly.signals.gaze.aois`
(word boxes, fixation → word) → :mod:`~tacitly.signals.gaze.measures` (per word and reader,
then across readers) → :mod:`~tacitly.signals.gaze.alignment` (onto a tokenizer's tokens).
:mod:`~tacitly.signals.gaze.simulate` produces synthetic readers with known ground truth.
"""

from tacitly.signals.gaze.alignment import (
    AlignedConversation,
    align_conversation,
    split_words,
    tokens_to_words,
    words_to_tokens,
)
from tacitly.signals.gaze.aois import (
    aois_from_table,
    layout_text,
    load_font,
    map_fixations_to_aois,
)
from tacitly.signals.gaze.fixations import (
    ScreenGeometry,
    detect_fixations_idt,
    detect_fixations_ivt,
    resample,
)
from tacitly.signals.gaze.measures import (
    CMCL_FEATURES,
    aggregate_readers,
    fit_cmcl_scale,
    reading_measures,
    rescale_to_cmcl,
)
from tacitly.signals.gaze.readers import (
    check_fixation_aois,
    cmcl_texts,
    iter_ifllm_tasks,
    read_cmcl,
    read_eyelink_fixations,
    read_eyelink_ia,
    read_ifllm_queries,
    read_ifllm_trace,
    read_oasst_etc,
    read_oasst_etc_words,
    read_samples,
)
from tacitly.signals.gaze.simulate import SimulatedReading, simulate_reading

__all__ = [
    "CMCL_FEATURES",
    "AlignedConversation",
    "ScreenGeometry",
    "SimulatedReading",
    "aggregate_readers",
    "align_conversation",
    "aois_from_table",
    "check_fixation_aois",
    "cmcl_texts",
    "detect_fixations_idt",
    "detect_fixations_ivt",
    "fit_cmcl_scale",
    "iter_ifllm_tasks",
    "layout_text",
    "load_font",
    "map_fixations_to_aois",
    "read_cmcl",
    "read_eyelink_fixations",
    "read_eyelink_ia",
    "read_ifllm_queries",
    "read_ifllm_trace",
    "read_oasst_etc",
    "read_oasst_etc_words",
    "read_samples",
    "reading_measures",
    "resample",
    "rescale_to_cmcl",
    "simulate_reading",
    "split_words",
    "tokens_to_words",
    "words_to_tokens",
]
