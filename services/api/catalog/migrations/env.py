"""Alembic environment: migrations run on the connection `services.api.catalog.db.migrate` passes in."""
from alembic import context
from sqlalchemy import create_engine

from services.api.catalog.models import Base

config = context.config
connection = config.attributes.get("connection")

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # `alembic -x` style use with sqlalchemy.url set in the config
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
