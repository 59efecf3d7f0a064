"""Alembic environment: runs on the connection handed over by ``migrate.upgrade``."""

from __future__ import annotations

from alembic import context

from tuner_service.models import Base

VERSION_TABLE = "tuner_alembic_version"

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through tuner_service.migrate
    raise RuntimeError("run migrations with 'tuner-service migrate'")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
