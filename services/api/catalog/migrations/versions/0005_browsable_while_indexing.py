"""a set is browsable while it is indexed

`sample_sets.indexed_rows` (int): rows written so far by the ingest running now (crud.replace_sample_set); a set
with `ready` false and `indexed_rows` > 0 is shown, marked as indexing, so a million-row set can be browsed
seconds after it is published instead of after its whole ingest. Existing sets are complete: their count.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sample_sets') as batch_op:
        batch_op.add_column(sa.Column('indexed_rows', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE sample_sets SET indexed_rows = num_rows WHERE ready")


def downgrade() -> None:
    with op.batch_alter_table('sample_sets') as batch_op:
        batch_op.drop_column('indexed_rows')
