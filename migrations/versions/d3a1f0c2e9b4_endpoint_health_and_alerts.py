"""endpoint health, pause and probe, alert recipients, and the alert outbox

Revision ID: d3a1f0c2e9b4
Revises: b7e1c2d3f4a5
Create Date: 2026-12-04 21:30:00

"""
import secrets
import time

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3a1f0c2e9b4'
down_revision = 'b7e1c2d3f4a5'
branch_labels = None
depends_on = None


def upgrade():
    endpoints = op.create_table(
        'endpoints',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('agent_id', sa.String(length=64), nullable=False),
        sa.Column('environment', sa.String(length=64), nullable=False),
        sa.Column('is_primary', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('alert_emails', sa.JSON(), nullable=False),
        sa.Column('alert_url', sa.String(length=2048), nullable=True),
        sa.Column('health', sa.String(length=16), nullable=False),
        sa.Column('health_since', sa.DateTime(), nullable=True),
        sa.Column('failing_since', sa.DateTime(), nullable=True),
        sa.Column('consecutive_failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', sa.DateTime(), nullable=True),
        sa.Column('last_success_at', sa.DateTime(), nullable=True),
        sa.Column('pause_reason', sa.Text(), nullable=True),
        sa.Column('probe_delay', sa.Double(), nullable=True),
        sa.Column('next_probe_at', sa.DateTime(), nullable=True),
        sa.Column('failing_alerted', sa.Boolean(), nullable=False),
        sa.Column('paused_alerted', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_endpoints')),
    )
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.create_index('ix_endpoints_pair', ['agent_id', 'environment'], unique=False)
        batch_op.create_index(batch_op.f('ix_endpoints_health'), ['health'], unique=False)
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.String(length=40), nullable=False),
        sa.Column('endpoint_id', sa.String(length=40), nullable=False),
        sa.Column('agent_id', sa.String(length=64), nullable=False),
        sa.Column('environment', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('target', sa.Text(), nullable=True),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_id'], ['endpoints.id'], name=op.f('fk_alerts_endpoint_id_endpoints')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_alerts_pair', ['agent_id', 'environment', 'created_at'], unique=False)

    # Each pair's webhook becomes its primary endpoint, healthy, with nobody alerted yet.
    connection = op.get_bind()
    pairs = connection.execute(sa.text('SELECT agent_id, environment FROM escalation_settings')).all()
    now = sa.func.now()
    rows = [{'id': f"ep_{int(time.time() * 1000):012x}{secrets.token_hex(5)}", 'agent_id': agent,
             'environment': env, 'is_primary': True, 'alert_emails': [], 'health': 'healthy',
             'consecutive_failures': 0, 'failing_alerted': False, 'paused_alerted': False}
            for agent, env in pairs]
    if rows:
        connection.execute(endpoints.insert().values(created_at=now), rows)


def downgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_pair')
        batch_op.drop_index('ix_alerts_due')
    op.drop_table('alerts')
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_endpoints_health'))
        batch_op.drop_index('ix_endpoints_pair')
    op.drop_table('endpoints')
