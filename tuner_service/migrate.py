"""Schema management: our tables by Alembic, Optuna's by Optuna's own storage."""

from __future__ import annotations

import logging
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


def schema_problem(url: str, wait_s: float, interval: float = 2.0) -> str | None:
    """Why a process of this version cannot use the database's schema, or None when it is
    current. A schema behind this version (a migration not run yet, e.g. the API that runs it
    still starting) is waited for up to ``wait_s`` seconds; one this version does not know (the
    database was migrated by a newer release) is refused at once."""
    import time

    head = head_revision()
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    deadline = time.monotonic() + wait_s
    engine = create_db_engine(url)
    waiting = False
    try:
        while True:
            try:
                current = current_revision(engine)
            except sa.exc.DBAPIError:
                current = "unreachable"
            if current == head:
                return None
            if current is not None and current != "unreachable" and current not in known:
                return (
                    f"the database schema is at revision {current}, newer than this release "
                    f"knows (its newest is {head}): upgrade this program"
                )
            if time.monotonic() >= deadline:
                return (
                    f"the database schema is at revision {current or 'none'} after waiting "
                    f"{wait_s:.0f}s; this release needs {head}: run `tuner-service migrate` "
                    "(`tuner-service serve` runs it at start)"
                )
            if not waiting:
                waiting = True
                logging.getLogger(__name__).info(
                    "waiting up to %.0fs for the database schema: at %s, this release needs %s",
                    wait_s, current or "none", head,
                )
            time.sleep(interval)
    finally:
        engine.dispose()
