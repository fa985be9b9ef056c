"""Collect reading behaviour: a web study that records mouse, scroll and webcam gaze while people
compare two answers, stores it durably, and exports it in the IFllm layout.

- :mod:`.study` — the study's YAML configuration;
- :mod:`.generators` — where the two answers come from;
- :mod:`.protocol` — what the browser may send, with its limits;
- :mod:`.store` — the database (SQLite or PostgreSQL, Alembic migrations), idempotent batches;
- :mod:`.server` — the FastAPI app: pages, upload API, ratings, calibration;
- :mod:`.export` — the IFllm layout and preference rows.

Needs the ``collect`` extra (``pip install tacitly[collect]``).
"""
