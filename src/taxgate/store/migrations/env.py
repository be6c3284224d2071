"""Alembic environment: migrations run on the connection `taxgate.store.migrate` hands over, or on
TAXGATE_DATABASE_URL when Alembic is run by hand (`alembic -c ... upgrade head`)."""

from alembic import context
from sqlalchemy import create_engine

from taxgate.store import database_url
from taxgate.store.models import Base

connection = context.config.attributes.get("connection")


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with create_engine(database_url()).begin() as own:
        run(own)
