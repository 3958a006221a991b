"""several endpoints per agent · environment: an additional endpoint's own settings, and one event row per
event × endpoint (today's events become the primary endpoint's rows, nothing lost)

Revision ID: e8c4b2a1d7f3
Revises: d3a1f0c2e9b4
Create Date: 2026-12-05 12:10:00

"""
import secrets
import time

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e8c4b2a1d7f3'
down_revision = 'd3a1f0c2e9b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('description', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('event_types', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('headers', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('retry_schedule', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('disabled_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('saved_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('saved_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('secret_ciphertext', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('secret_created_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_ciphertext', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', sa.DateTime(), nullable=True))

    connection = op.get_bind()
    # Every pair has its primary endpoint (pairs added since the last migration may lack one).
    missing = connection.execute(sa.text(
        'SELECT s.agent_id, s.environment FROM escalation_settings s WHERE NOT EXISTS (SELECT 1 FROM endpoints e '
        'WHERE e.agent_id = s.agent_id AND e.environment = s.environment AND e.is_primary)')).all()
    for agent, env in missing:
        connection.execute(sa.text(
            "INSERT INTO endpoints (id, agent_id, environment, is_primary, created_at, alert_emails, health, "
            "consecutive_failures, failing_alerted, paused_alerted) VALUES (:id, :agent, :env, :yes, "
            "CURRENT_TIMESTAMP, '[]', 'healthy', 0, :no, :no)"),
            {'id': f"ep_{int(time.time() * 1000):012x}{secrets.token_hex(5)}", 'agent': agent, 'env': env,
             'yes': True, 'no': False})

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('endpoint_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.String(length=40), nullable=True))
    # Today's events are the primary endpoint's: same ids (their webhook-id), same state, nothing lost.
    connection.execute(sa.text(
        'UPDATE events SET endpoint_id = (SELECT e.id FROM endpoints e WHERE e.agent_id = events.agent_id '
        'AND e.environment = events.environment AND e.is_primary)'))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('endpoint_id', existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_index('ix_events_escalation_sequence')
        batch_op.create_index('ix_events_escalation_sequence', ['escalation_id', 'endpoint_id', 'sequence'],
                              unique=False)
        batch_op.create_index('ix_events_endpoint', ['endpoint_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_message_id'), ['message_id'], unique=False)


def downgrade():
    connection = op.get_bind()
    connection.execute(sa.text('DELETE FROM attempts WHERE event_id IN (SELECT id FROM events '
                               'WHERE message_id IS NOT NULL)'))
    connection.execute(sa.text('DELETE FROM events WHERE message_id IS NOT NULL'))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_message_id'))
        batch_op.drop_index('ix_events_endpoint')
        batch_op.drop_index('ix_events_escalation_sequence')
        batch_op.create_index('ix_events_escalation_sequence', ['escalation_id', 'sequence'], unique=False)
        batch_op.drop_column('message_id')
        batch_op.drop_column('endpoint_id')
    connection.execute(sa.text('DELETE FROM alerts WHERE endpoint_id IN (SELECT id FROM endpoints '
                               'WHERE NOT is_primary)'))
    connection.execute(sa.text('DELETE FROM endpoints WHERE NOT is_primary'))
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        for column in ('previous_secret_expires_at', 'previous_secret_ciphertext', 'secret_created_at',
                       'secret_ciphertext', 'saved_at', 'saved_by', 'version', 'disabled_at', 'disabled_reason',
                       'retry_schedule', 'headers', 'event_types', 'description', 'enabled', 'url'):
            batch_op.drop_column(column)
