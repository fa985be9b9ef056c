"""Word boxes: each answer's layout versions and one row per word rectangle.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LAYOUT_KEY = ("task_id", "response", "version")


def _task_id() -> sa.Column[int]:
    return sa.Column(
        "task_id",
        sa.Integer(),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "layouts",
        _task_id(),
        sa.Column("response", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("epoch_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("height", sa.Float(), nullable=False),
        sa.Column("n_boxes", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "word_boxes",
        _task_id(),
        sa.Column("response", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("box", sa.Integer(), primary_key=True),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(100), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("left", sa.Float(), nullable=False),
        sa.Column("top", sa.Float(), nullable=False),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("height", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            list(LAYOUT_KEY), [f"layouts.{name}" for name in LAYOUT_KEY], ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("word_boxes")
    op.drop_table("layouts")
