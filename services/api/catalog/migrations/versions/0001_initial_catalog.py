"""initial catalog

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('results',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('suite', sa.String(length=128), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('lower_is_better', sa.Boolean(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('run_id', 'suite', 'metric')
    )
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_results_run_id'), ['run_id'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('config_sha256', sa.String(length=64), nullable=False),
    sa.Column('entrypoint', sa.Text(), nullable=False),
    sa.Column('output_uri', sa.Text(), nullable=False),
    sa.Column('sample_set_id', sa.String(length=128), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_submitted_at'), ['submitted_at'], unique=False)

    op.create_table('sample_sets',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('preset', sa.String(length=64), nullable=False),
    sa.Column('lineage', sa.JSON(), nullable=False),
    sa.Column('statistics', sa.JSON(), nullable=False),
    sa.Column('class_names', sa.JSON(), nullable=False),
    sa.Column('shards', sa.JSON(), nullable=False),
    sa.Column('num_rows', sa.Integer(), nullable=False),
    sa.Column('has_discretized', sa.Boolean(), nullable=False),
    sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sample_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sample_sets_created_at'), ['created_at'], unique=False)

    op.create_table('samples',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('set_id', sa.String(length=128), nullable=False),
    sa.Column('sample_id', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.Integer(), nullable=False),
    sa.Column('prediction', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('top5', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['set_id'], ['sample_sets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('set_id', 'sample_id')
    )
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.create_index('ix_samples_class', ['set_id', 'label', 'kind', 'position'], unique=False)
        batch_op.create_index('ix_samples_order', ['set_id', 'kind', 'position'], unique=False)
        batch_op.create_index('ix_samples_pair', ['set_id', 'source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_samples_sample_id'), ['sample_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_samples_sample_id'))
        batch_op.drop_index('ix_samples_pair')
        batch_op.drop_index('ix_samples_order')
        batch_op.drop_index('ix_samples_class')

    op.drop_table('samples')
    with op.batch_alter_table('sample_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sample_sets_created_at'))

    op.drop_table('sample_sets')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_submitted_at'))
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index(batch_op.f('ix_runs_kind'))

    op.drop_table('runs')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_results_run_id'))

    op.drop_table('results')
