"""perturbation diagnostics per sample (sample store format v4)

`samples.perturbation` (JSON, nullable): what the attack changed on a Q(x') row (schemas.sample_store
COL_PERTURBATION); null on other kinds and on rows of sets before format v4.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('samples') as batch_op:
        batch_op.add_column(sa.Column('perturbation', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('samples') as batch_op:
        batch_op.drop_column('perturbation')
