"""Alembic environment: runs on the connection that :func:`tacitly.collect.store.upgrade`
passes in ``config.attributes`` (tacitly has no alembic.ini; the URL comes from ``--db``)."""

from __future__ import annotations

from alembic import context

from tacitly.collect.store import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only by hand
    raise RuntimeError("run the migrations through tacitly.collect.store.upgrade(engine)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
