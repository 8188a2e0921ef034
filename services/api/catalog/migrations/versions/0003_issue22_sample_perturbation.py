"""perturbation diagnostics per sample (sample store format v4)

`samples.perturbation` (JSON, nullable): what the attack changed on a Q(x') row (schemas.sample_store
COL_PERTURBATION); null on other kinds and on rows of sets before format v4.

Revision ID: 0003_issue22_sample_perturbation
Revises: 0002
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_issue22_sample_perturbation'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('samples') as batch_op:
        batch_op.add_column(sa.Column('perturbation', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('samples') as batch_op:
        batch_op.drop_column('perturbation')
