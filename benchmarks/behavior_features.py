"""Time the IFllm feature extraction over a whole folder (default: the shared subset).

Prints one JSON line: ``seconds`` (wall clock of ``build_feature_table``, reading the traces
straight from ``user_behavior.tar.gz``), the target (≤ 120 s on 2 cores), the table's shape,
and how many questions have traces and labels. Run::

    .venv/bin/python benchmarks/behavior_features.py [FOLDER]
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import polars as pl

from tacitly.signals.behavior import build_feature_table

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ifllm"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    start = time.perf_counter()
    cpu_start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = build_feature_table(folder)
    seconds = time.perf_counter() - start
    result = {
        "seconds": round(seconds, 2),
        "target_seconds": 120,
        "within_target": seconds <= 120,
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
        "questions": table.height,
        "features": len([c for c in table.columns if table.schema[c].is_numeric()]) - 4,
        "with_traces": int(table["has_traces"].sum()),
        "labelled": int(table["label"].is_not_null().sum()),
        "cores": os.cpu_count(),
        "polars": pl.__version__,
        "folder": str(folder),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
