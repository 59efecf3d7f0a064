"""Fixtures shared by every test: databases (SQLite files, PostgreSQL, MariaDB), settings,
services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import sqlalchemy as sa
from support import make_settings

from tuner_service.migrate import upgrade
from tuner_service.service import Services

PG_ADMIN_URL = os.environ.get(
    "TUNER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get(
    "TUNER_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tuner.db'}"


def _admin_engine(url: str, server: str) -> sa.Engine:
    """An AUTOCOMMIT engine on a server's admin URL; skips the test when the server is
    unreachable, except in CI (CI=true), where it fails."""
    # pre-ping: a test may restart the server (tests/reliability/test_outages.py)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if _in_ci():
            pytest.fail(f"{server} is required in CI but unreachable at {url}: {exc}")
        pytest.skip(f"{server} unreachable at {url}")
    return admin


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards).

    Skipped when PostgreSQL is unreachable, except in CI (CI=true), where it fails.
    """
    admin = _admin_engine(PG_ADMIN_URL, "PostgreSQL")
    name = f"tuner_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for one test (dropped afterwards).

    Skipped when the server is unreachable (or PyMySQL is missing), except in CI (CI=true),
    where it fails.
    """
    try:
        import pymysql  # noqa: F401  (the ``mysql`` extra)
    except ImportError:
        if _in_ci():
            pytest.fail("PyMySQL (the `mysql` extra) is required in CI")
        pytest.skip("PyMySQL is not installed (the `mysql` extra)")
    admin = _admin_engine(MARIADB_ADMIN_URL, "MariaDB")
    name = f"tuner_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = sa.engine.make_url(MARIADB_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The service database, once on each backend: SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tuner.db'}"
    return str(request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'mariadb'}_url"))


@pytest.fixture
def services(sqlite_url: str) -> Iterator[Services]:
    upgrade(sqlite_url)
    s = Services(make_settings(sqlite_url))
    yield s
    s.close()
