"""accepted per kind (sample store format v2), confidence index for sorting

`samples.accepted` becomes nullable: it is the teacher's verdict on adversarial rows and null on clean and
Q(x) rows (schemas.sample_store.COL_ACCEPTED); rows indexed from v1 sets before this revision are fixed up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('samples') as batch_op:  # SQLite cannot ALTER COLUMN: batch mode copies the table
        batch_op.alter_column('accepted', existing_type=sa.Boolean(), nullable=True)
    op.execute("UPDATE samples SET accepted = NULL WHERE kind <> 'adversarial'")
    op.create_index('ix_samples_confidence', 'samples', ['set_id', 'kind', 'confidence'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_samples_confidence', table_name='samples')
    op.execute("UPDATE samples SET accepted = TRUE WHERE kind = 'clean'")
    op.execute("UPDATE samples SET accepted = (prediction = label) WHERE kind = 'discretized'")
    with op.batch_alter_table('samples') as batch_op:
        batch_op.alter_column('accepted', existing_type=sa.Boolean(), nullable=False)
