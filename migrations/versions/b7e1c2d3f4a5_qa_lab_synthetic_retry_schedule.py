"""qa lab: synthetic markers, per-pair retry schedule, scenario jobs

Revision ID: b7e1c2d3f4a5
Revises: 9ab6107b04c7
Create Date: 2026-11-30 22:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e1c2d3f4a5'
down_revision = '9ab6107b04c7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('escalation_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_schedule', sa.String(length=200), nullable=True))
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('synthetic', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_escalations_synthetic', ['agent_id', 'environment', 'synthetic'], unique=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('synthetic', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('simulation_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scenario', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('simulation_jobs', schema=None) as batch_op:
        batch_op.drop_column('scenario')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('synthetic')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index('ix_escalations_synthetic')
        batch_op.drop_column('synthetic')
    with op.batch_alter_table('escalation_settings', schema=None) as batch_op:
        batch_op.drop_column('retry_schedule')
