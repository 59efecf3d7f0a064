"""Database engines: ours (SQLAlchemy) and Optuna's ``RDBStorage`` on the same URL.

SQLite gets WAL and a busy timeout so that parallel workers on one host do not hit
"database is locked". MariaDB/MySQL sessions run at READ COMMITTED, PostgreSQL's default, so
that a statement after a row lock sees every commit before it (InnoDB's REPEATABLE READ would
read an older snapshot); the server must know ``SKIP LOCKED`` (MariaDB 10.6, MySQL 8.0).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60.0


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs and PyMySQL for ``mysql://``."""
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername in ("mysql", "mariadb"):
        u = u.set(drivername="mysql+pymysql")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_mysql(url: str) -> bool:
    """MariaDB or MySQL (SQLAlchemy's ``mysql`` backend; ``mariadb://`` URLs too)."""
    return make_url(url).get_backend_name() in ("mysql", "mariadb")


def engine_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for ``create_engine`` (shared with Optuna's storage)."""
    if is_sqlite(url):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}}
    kw: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 1800}
    if is_mysql(url):
        kw["isolation_level"] = "READ COMMITTED"
    return kw


class UnsupportedDatabaseError(RuntimeError):
    """The database server lacks something the service relies on (named in the message)."""


#: Oldest servers with ``SELECT ... FOR UPDATE SKIP LOCKED`` (the claim's lock).
MIN_MARIADB = (10, 6)
MIN_MYSQL = (8, 0, 1)


def server_problem(version: str) -> str | None:
    """Why a MariaDB/MySQL server of this ``SELECT VERSION()`` cannot hold the service, or
    None when it can."""
    numbers = tuple(int(x) for x in version.split("-")[0].split(".")[:3] if x.isdigit())
    is_mariadb = "mariadb" in version.lower()
    need = MIN_MARIADB if is_mariadb else MIN_MYSQL
    if numbers >= need:
        return None
    name = "MariaDB" if is_mariadb else "MySQL"
    return (
        f"{name} {version} is not supported: the claim needs SELECT ... FOR UPDATE SKIP LOCKED "
        f"({name} {'.'.join(map(str, need))} or newer)"
    )


def check_server(engine: Engine) -> None:
    """Refuse a server the claim cannot work on, with a message naming what is missing.

    Raises:
        UnsupportedDatabaseError: MariaDB older than 10.6 or MySQL older than 8.0.1.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        return
    with engine.connect() as conn:
        problem = server_problem(str(conn.execute(sa.text("SELECT VERSION()")).scalar_one()))
    if problem is not None:
        raise UnsupportedDatabaseError(problem)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event open transactions (pysqlite would defer BEGIN otherwise).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    """WAL, busy timeout and ``BEGIN IMMEDIATE`` transactions on a SQLite engine.

    Every transaction takes the write lock up front (waiting up to the busy timeout), so a
    transaction that reads then writes never fails with an instant "database is locked" when
    another process wrote in between; WAL keeps readers of other connections unblocked.
    A ``read_only`` engine (one that never writes) opens plain ``BEGIN`` transactions instead:
    one snapshot per transaction, no write lock, so readers never queue behind writers.
    """
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _begin_deferred if read_only else _begin_immediate)
    engine.dispose()  # connections opened before the listeners lack the pragmas


def create_db_engine(url: str, *, read_only: bool = False) -> Engine:
    """``read_only``: for an engine that only reads. SQLite: deferred transactions. Elsewhere
    each transaction is one ``REPEATABLE READ`` snapshot, set once per connection, and no
    pre-ping round trip (its callers retry transient errors, and SQLAlchemy drops a pool's
    connections when one of them turns out to be disconnected)."""
    url = normalize_url(url)
    kw = engine_kwargs(url)
    if read_only and not is_sqlite(url):
        kw.update(isolation_level="REPEATABLE READ", pool_pre_ping=False)
    engine = sa.create_engine(url, **kw)
    if is_sqlite(url):
        configure_sqlite(engine, read_only=read_only)
    return engine


class utc_now(FunctionElement[datetime]):
    """The database server's current time, naive UTC, with microseconds where it keeps them.

    Liveness is judged on this one clock (heartbeats written with it, expiry compared with it),
    so a host whose clock is off neither loses its live work nor hides a dead worker.
    """

    type = sa.DateTime()
    inherit_cache = True


@compiles(utc_now)
def _utc_now_default(_element: utc_now, _compiler: Any, **_kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utc_now, "postgresql")
def _utc_now_pg(_element: utc_now, _compiler: Any, **_kw: Any) -> str:
    return "(statement_timestamp() AT TIME ZONE 'UTC')"


@compiles(utc_now, "mysql")
@compiles(utc_now, "mariadb")
def _utc_now_mysql(_element: utc_now, _compiler: Any, **_kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(_element: utc_now, _compiler: Any, **_kw: Any) -> str:
    # The format SQLAlchemy stores SQLite datetimes in (text that sorts as time does).
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


#: Transient database trouble (restart, network blip): retried with backoff.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
)


def db_retry(max_wait_s: float = 120.0) -> Any:
    """Decorator: retry a whole unit of database work on transient errors, with backoff."""
    return retry(
        retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
        wait=wait_exponential(multiplier=0.2, max=5.0),
        stop=stop_after_delay(max_wait_s),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


@db_retry(max_wait_s=120.0)
def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def wait_for_database(engine: Engine) -> None:
    """Block until the database answers (start-up order: wait for DB, migrate, serve), then
    check that the server is one the service supports.

    Raises:
        UnsupportedDatabaseError: see :func:`check_server`.
    """
    _ping(engine)
    check_server(engine)
