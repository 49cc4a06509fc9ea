"""encrypted secrets: AppKeys encrypted at rest

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 23:59:00

Uses the same key as the app (SMSOPS_ENCRYPTION_KEY, else instance/encryption_key),
through app.encryption; rows already encrypted are left as they are.
"""

from alembic import op
import sqlalchemy as sa

from app import encryption


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_rows = sa.text("SELECT id, app_key FROM application")
_set = sa.text("UPDATE application SET app_key = :key WHERE id = :id")


def upgrade() -> None:
    with op.batch_alter_table('application') as batch:
        batch.alter_column('app_key', existing_type=sa.String(length=128),
                           type_=sa.String(length=255), existing_nullable=False)
    conn = op.get_bind()
    rows = conn.execute(_rows).all()
    if not rows:
        return  # no key needed (nor made) for an empty table
    keys = encryption.keyring()
    for row_id, value in rows:
        if encryption.is_encrypted(value):
            keys.decrypt(value)  # refuses, clearly, a key that cannot read it
            continue
        conn.execute(_set, {"id": row_id, "key": keys.encrypt(value)})


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(_rows).all()
    if rows:
        keys = encryption.keyring()
        for row_id, value in rows:
            if encryption.is_encrypted(value):
                conn.execute(_set, {"id": row_id, "key": keys.decrypt(value)})
    with op.batch_alter_table('application') as batch:
        batch.alter_column('app_key', existing_type=sa.String(length=255),
                           type_=sa.String(length=128), existing_nullable=False)
