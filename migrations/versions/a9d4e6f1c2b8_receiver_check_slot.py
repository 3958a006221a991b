"""the receiver check's slot: when an endpoint's last check began, taken atomically before its probes

Revision ID: a9d4e6f1c2b8
Revises: e8c4b2a1d7f3
Create Date: 2026-12-05 16:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a9d4e6f1c2b8'
down_revision = 'e8c4b2a1d7f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('check_started_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_column('check_started_at')
