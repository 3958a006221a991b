"""receiver check diagnosis

Revision ID: a13d1a9e0c01
Revises: f585194923f2
Create Date: 2026-11-30 19:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a13d1a9e0c01'
down_revision = 'f585194923f2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('receiver_checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('diagnosis', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('receiver_checks', schema=None) as batch_op:
        batch_op.drop_column('diagnosis')
