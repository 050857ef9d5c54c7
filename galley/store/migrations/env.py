"""Alembic environment: migrations run on the connection Galley hands over (see store.database)."""

from alembic import context

from galley.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
