"""One entry point for every preference source: :func:`load_preferences`."""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path

from tacitly.data.demo import load_demo
from tacitly.data.files import FILE_SUFFIXES, read_preference_file
from tacitly.data.hub import HubSource, load_helpsteer2, load_oasst1
from tacitly.data.local import load_autoj, load_hh_rlhf, load_ifllm
from tacitly.data.schema import PreferenceDataset
from tacitly.errors import InputError

__all__ = ["DATASET_NAMES", "load_preferences"]

StrPath = str | PathLike[str]

#: Accepted names (matched case-insensitively) → the canonical name.
DATASET_NAMES: dict[str, str] = {
    "autoj": "autoj",
    "auto-j": "autoj",
    "hh-rlhf": "hh-rlhf",
    "anthropic/hh-rlhf": "hh-rlhf",
    "helpsteer2": "helpsteer2",
    "nvidia/helpsteer2": "helpsteer2",
    "oasst1": "oasst1",
    "openassistant/oasst1": "oasst1",
    "ifllm": "ifllm",
    "demo": "demo",
}


def load_preferences(
    name_or_path: StrPath,
    *,
    split: str | None = None,
    seed: int = 42,
    data_dir: StrPath | None = None,
    source: HubSource = None,
    offline: bool | None = None,
) -> PreferenceDataset:
    """Load preference pairs by dataset name or from a local file or folder.

    Parameters
    ----------
    name_or_path:
        ``"autoj"``, ``"hh-rlhf"``, ``"helpsteer2"`` (or ``"nvidia/HelpSteer2"``),
        ``"oasst1"`` (or ``"OpenAssistant/oasst1"``), ``"ifllm"``, ``"demo"``, or the path of a
        .jsonl/.json/.parquet/.csv file or a folder of ``train``/``validation``/``test`` files
        (see :func:`~tacitly.data.read_preference_file`).
    split:
        Keep only ``"train"``, ``"validation"`` or ``"test"`` (default: None, all).
    seed:
        Seed of the deterministic grouped split (default: 42).
    data_dir:
        Folder of the shared data, for autoj, hh-rlhf and ifllm (default: ``$TACITLY_DATA``,
        else ``../shared/data`` from the working directory).
    source:
        A local copy of the data: a file for autoj/hh-rlhf/ifllm; a folder or a
        ``{"train": ..., "validation": ...}`` mapping for helpsteer2/oasst1 (default: None).
    offline:
        helpsteer2/oasst1 only: True never contacts the hub (default: None, decided from
        ``HF_HUB_OFFLINE`` and a 2 s reachability check).

    Returns
    -------
    PreferenceDataset
        Rows in TRL's conversational preference format, split train/validation/test.

    Raises
    ------
    InputError
        On an unknown name (listing the known ones), a missing file, or a malformed row.

    Examples
    --------
    >>> demo = load_preferences("demo", split="test")
    >>> list(demo.splits), demo.rows[0]["meta"]["pipeline_demo"]
    (['test'], True)
    """
    canonical = DATASET_NAMES.get(str(name_or_path).strip().lower())
    if canonical is None:
        return _load_path(Path(name_or_path), seed=seed, split=split)
    is_path = isinstance(source, str | PathLike)
    if source is not None and not is_path and canonical not in ("helpsteer2", "oasst1"):
        raise InputError(
            f"{canonical} takes a file path as source", field="source", expected="a path"
        )
    if canonical in ("helpsteer2", "oasst1"):
        hub_loader = load_helpsteer2 if canonical == "helpsteer2" else load_oasst1
        return hub_loader(source=source, seed=seed, split=split, offline=offline)
    if canonical == "demo":
        return load_demo(seed=seed, split=split)
    local_loaders: dict[str, Callable[..., PreferenceDataset]] = {
        "autoj": load_autoj,
        "hh-rlhf": load_hh_rlhf,
        "ifllm": load_ifllm,
    }
    path = source if isinstance(source, str | PathLike) else None
    return local_loaders[canonical](path=path, data_dir=data_dir, seed=seed, split=split)


def _load_path(path: Path, *, seed: int, split: str | None) -> PreferenceDataset:
    if path.exists():
        return read_preference_file(path, seed=seed, split=split)
    known = ", ".join(sorted(set(DATASET_NAMES.values())))
    if path.name.lower().endswith(FILE_SUFFIXES):
        raise InputError("file not found", source=path)
    raise InputError(
        f"unknown preference dataset {str(path)!r} (and no such file or folder)",
        field="name",
        expected=f"one of {known}, or an existing .jsonl/.json/.parquet/.csv file or folder",
    )
