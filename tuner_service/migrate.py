"""Schema management: our tables by Alembic, Optuna's by Optuna's own storage."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from .db import create_db_engine, wait_for_database
from .optuna_bridge import create_optuna_storage

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "tuner_alembic_version"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(url: str) -> str:
    """Bring the database to the newest schema (ours and Optuna's); returns our revision."""
    engine = create_db_engine(url)
    try:
        wait_for_database(engine)
        # Optuna's tables first: revision 0004 indexes Optuna's ``trials`` table.
        create_optuna_storage(url).engine.dispose()  # creates or checks Optuna's tables
        cfg = _config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return head_revision()
    finally:
        engine.dispose()


def is_up_to_date(engine: Engine) -> bool:
    try:
        return current_revision(engine) == head_revision()
    except sa.exc.DBAPIError:
        return False


def wait_until_current(url: str, timeout: float, interval: float = 2.0) -> bool:
    """Whether the schema reaches the newest revision within ``timeout`` seconds (checked at
    once, then every ``interval``); changes nothing. An unreachable database counts as not
    current."""
    import time

    deadline = time.monotonic() + timeout
    engine = create_db_engine(url)
    try:
        while True:
            if is_up_to_date(engine):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
    finally:
        engine.dispose()
