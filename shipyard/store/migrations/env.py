"""Alembic environment: runs on the connection Shipyard hands over."""

from alembic import context

from shipyard.store.db import load_schema

target_metadata = load_schema()
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
