"""A result cache for predicted reading measures, keyed by a hash of the model and the text.

Reward-model training scores the same prompts and answers many times; the cache makes sure the
predictor never predicts the same text twice. It is one SQLite file (safe to share between
processes: each write is its own transaction, readers never block on WAL), holding for each
``(model key, text hash)`` the predicted values as a float32 matrix ``[n_words, n_measures]``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tacitly.errors import InputError

FloatMatrix = npt.NDArray[np.float32]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    n_words INTEGER NOT NULL,
    n_measures INTEGER NOT NULL,
    values_f32 BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)
)
"""
# SQLite's default limit on host parameters is 999 in old builds; stay below it.
_CHUNK = 500


def text_hash(words: Sequence[str]) -> str:
    """A stable hash of a text given as its words (the unit the predictors see).

    Parameters
    ----------
    words:
        The words of one text.

    Returns
    -------
    str
        Hex SHA-256 of the words joined by a separator that cannot occur inside a word.

    Examples
    --------
    >>> text_hash(["Hello", "world."]) == text_hash(["Hello", "world."])
    True
    >>> text_hash(["Hello", "world."]) == text_hash(["Hello world."])
    False
    """
    digest = hashlib.sha256()
    for word in words:
        digest.update(word.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class PredictionCache:
    """Predicted word measures stored on disk, looked up by model key and text hash.

    Parameters
    ----------
    path:
        The SQLite file; its folder is created when missing.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = PredictionCache(Path(tempfile.mkdtemp()) / "gaze.sqlite")
    >>> cache.put_many("v1", {"abc": np.ones((2, 5), dtype=np.float32)})
    >>> cache.get_many("v1", ["abc", "missing"])["abc"].shape
    (2, 5)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=30.0)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(_SCHEMA)
            self._connection.commit()
        except (OSError, sqlite3.Error) as error:
            raise InputError(
                f"cannot open the prediction cache: {error}",
                source=self.path,
                expected="a writable SQLite file (or pass cache=None to disable caching)",
            ) from error

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, FloatMatrix]:
        """The cached matrices among ``hashes`` (missing ones are simply absent)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, FloatMatrix] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(
                "SELECT text_hash, n_words, n_measures, values_f32 FROM predictions "
                f"WHERE model = ? AND text_hash IN ({marks})",
                [model, *chunk],
            )
            for key, n_words, n_measures, blob in rows:
                values = np.frombuffer(blob, dtype=np.float32).reshape(n_words, n_measures)
                found[key] = values.copy()
        return found

    def put_many(self, model: str, values: Mapping[str, FloatMatrix]) -> None:
        """Store matrices (``[n_words, n_measures]``) under ``model`` in one transaction."""
        rows = []
        for key, matrix in values.items():
            array = np.ascontiguousarray(matrix, dtype=np.float32)
            if array.ndim != 2:
                raise InputError(f"cache values must be 2-D, got shape {array.shape}", field=key)
            rows.append((model, key, array.shape[0], array.shape[1], array.tobytes()))
        with self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)", rows
            )

    def __len__(self) -> int:
        (count,) = self._connection.execute("SELECT COUNT(*) FROM predictions").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()
