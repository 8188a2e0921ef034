"""scale: per-set counts table, indexes leading with the stored position / confidence for keyset pages

`sample_counts` holds a set's rows per (class, kind, accepted), written at ingest, so the set page and the
samples pages' totals never count the set; existing sets are counted once here. `sample_sets.ready` hides a
set while its rows are written in short transactions. New indexes let every
order the browser offers read a page as an index range (ImageNet-size sets: 2.5 M+ rows per set).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of sample_sets would cascade-delete every sample row.
    op.add_column('sample_sets', sa.Column('ready', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table('sample_counts',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('set_id', sa.String(length=128), nullable=False),
    sa.Column('label', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=True),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['set_id'], ['sample_sets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index('ix_sample_counts_set', 'sample_counts', ['set_id', 'label'], unique=False)
    op.execute("INSERT INTO sample_counts (set_id, label, kind, accepted, n) "
               "SELECT set_id, label, kind, accepted, count(*) FROM samples GROUP BY set_id, label, kind, accepted")
    op.drop_index('ix_samples_confidence', table_name='samples')
    op.create_index('ix_samples_confidence', 'samples', ['set_id', 'kind', 'confidence', 'position'], unique=False)
    op.create_index('ix_samples_confidence_all', 'samples', ['set_id', 'confidence', 'position'], unique=False)
    op.create_index('ix_samples_position', 'samples', ['set_id', 'position'], unique=False)
    op.create_index('ix_samples_accepted', 'samples', ['set_id', 'kind', 'accepted', 'position'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_samples_accepted', table_name='samples')
    op.drop_index('ix_samples_position', table_name='samples')
    op.drop_index('ix_samples_confidence_all', table_name='samples')
    op.drop_index('ix_samples_confidence', table_name='samples')
    op.create_index('ix_samples_confidence', 'samples', ['set_id', 'kind', 'confidence'], unique=False)
    op.drop_index('ix_sample_counts_set', table_name='sample_counts')
    op.drop_table('sample_counts')
    op.drop_column('sample_sets', 'ready')
