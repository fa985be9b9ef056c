"""Start the study server under uvicorn, with one or several worker processes.

Several workers need an import string, so the app is built by :func:`app_from_environment`
from ``TACITLY_STUDY`` (a study file, or empty for the embedded demo) and ``TACITLY_DB``
(a database URL or SQLite path) in each worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from tacitly.collect.server import create_app
from tacitly.collect.store import Store, database_url
from tacitly.collect.study import default_study, load_study

__all__ = ["app_from_environment", "serve"]

STUDY_VARIABLE = "TACITLY_STUDY"
DB_VARIABLE = "TACITLY_DB"


def app_from_environment() -> FastAPI:
    """The app for ``TACITLY_STUDY`` and ``TACITLY_DB`` (uvicorn's factory in each worker)."""
    study_file = os.environ.get(STUDY_VARIABLE) or None
    study = load_study(study_file) if study_file else default_study()
    # Migrations ran once in serve(); workers only connect.
    store = Store(os.environ.get(DB_VARIABLE) or None, migrate=False)
    return create_app(study, store)


def serve(
    *,
    study: str | Path | None = None,
    db: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
) -> None:
    """Migrate the database, then serve the study until interrupted.

    Parameters
    ----------
    study:
        Study YAML file (default: None, the embedded demo study).
    db:
        Database URL, or a path for SQLite (default: None, ``study.db`` here).
    host, port:
        Where to listen (default: 127.0.0.1:8000).
    workers:
        uvicorn worker processes (default: 1; use several with PostgreSQL).
    log_level:
        uvicorn's log level (default: "warning").
    """
    import uvicorn

    if study is not None:
        load_study(study)  # a bad file fails here, before any worker starts
    url = database_url(db)
    Store(url).close()
    os.environ[STUDY_VARIABLE] = str(Path(study).resolve()) if study is not None else ""
    os.environ[DB_VARIABLE] = url
    uvicorn.run(
        "tacitly.collect.runner:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
