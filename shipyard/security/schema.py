"""Tables owned by security: identities, memberships and grants, tokens and keys, login
throttling and the hash-chained audit log.

Principals are referenced as (``principal_type``, ``principal_name``) pairs, where the type
is ``user`` or ``service_account`` (grants also accept ``team``); there is no foreign key
because one column pair points at two tables. Users are disabled, never deleted, so these
references do not dangle. Signing keys keep only an encrypted private key (see
:mod:`shipyard.security.keys`).
"""

import sqlalchemy as sa

from shipyard.store.db import metadata

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ws() -> sa.ForeignKey:
    return sa.ForeignKey("workspaces.name", ondelete="CASCADE")


users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tokens_valid_after", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

service_accounts = sa.Table(
    "service_accounts",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tokens_valid_after", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

workspace_members = sa.Table(
    "workspace_members",
    metadata,
    sa.Column("workspace", sa.String(64), _ws(), primary_key=True),
    sa.Column("principal_type", sa.String(16), primary_key=True),
    sa.Column("principal_name", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_workspace_members_principal", "principal_type", "principal_name"),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column("team", sa.String(128), primary_key=True),
    sa.Column("principal_type", sa.String(16), primary_key=True),
    sa.Column("principal_name", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_team_members_principal", "principal_type", "principal_name"),
)

resource_grants = sa.Table(
    "resource_grants",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("resource_name", sa.String(256), nullable=False),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint(
        "workspace",
        "resource_type",
        "resource_name",
        "principal_type",
        "principal_name",
        name="uq_resource_grants_target",
    ),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.String(32), nullable=False),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_name", sa.String(128), nullable=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("revoke_reason", sa.String(32), nullable=False, server_default=""),
    sa.Index("ix_refresh_tokens_family", "family_id"),
    sa.Index("ix_refresh_tokens_principal", "principal_type", "principal_name"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_name", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("scopes", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Index("ix_api_keys_principal", "principal_type", "principal_name"),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("alg", sa.String(8), nullable=False),
    sa.Column("public_key_pem", sa.Text, nullable=False),
    sa.Column("private_key_pem", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("signing_until", sa.BigInteger, nullable=True),
    sa.Column("verify_until", sa.BigInteger, nullable=True),
)

login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("locked_until", sa.BigInteger, nullable=False, server_default="0"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource_type", sa.String(32), nullable=False, server_default=""),
    sa.Column("resource_id", sa.String(512), nullable=False, server_default=""),
    sa.Column("workspace", sa.String(64), nullable=False, server_default=""),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_at", "at"),
)

# One row (id 1): the seq and hash of the newest record, written in the same transaction as
# the record. It lets verify notice records cut off the end or appended behind the log's back.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
