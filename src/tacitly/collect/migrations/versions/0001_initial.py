"""The first schema: participants, sessions, tasks, calibrations, batches, samples.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SAMPLE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_participants_external_id", "participants", ["external_id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "participant_id",
            sa.String(36),
            sa.ForeignKey("participants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("screen_width", sa.Integer(), nullable=True),
        sa.Column("screen_height", sa.Integer(), nullable=True),
        sa.Column("calibration_precision", sa.Float(), nullable=True),
    )
    op.create_index("ix_sessions_participant_id", "sessions", ["participant_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("response_1", sa.Text(), nullable=False),
        sa.Column("response_2", sa.Text(), nullable=False),
        sa.Column("source_1", sa.String(200), nullable=True),
        sa.Column("source_2", sa.String(200), nullable=True),
        sa.Column("shown_ms", sa.BigInteger(), nullable=False),
        sa.Column("likert_1", sa.Integer(), nullable=True),
        sa.Column("likert_2", sa.Integer(), nullable=True),
        sa.Column("preference", sa.Integer(), nullable=True),
        sa.Column("rated_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_tasks_session_id", "tasks", ["session_id"])
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("precision", sa.Float(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_calibrations_session_id", "calibrations", ["session_id"])
    op.create_table(
        "batches",
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "samples",
        sa.Column("id", SAMPLE_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String(36),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("epoch_ms", sa.BigInteger(), nullable=False),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("response", sa.Integer(), nullable=False),
        sa.Column("x_rel", sa.Float(), nullable=True),
        sa.Column("y_rel", sa.Float(), nullable=True),
        sa.Column("char_index", sa.Integer(), nullable=True),
        sa.Column("text_window", sa.String(64), nullable=True),
        sa.Column("camera_valid", sa.Boolean(), nullable=True),
        sa.Column("value", sa.String(200), nullable=True),
    )
    op.create_index("ix_samples_session_id", "samples", ["session_id"])


def downgrade() -> None:
    for table in ("samples", "batches", "calibrations", "tasks", "sessions", "participants"):
        op.drop_table(table)
