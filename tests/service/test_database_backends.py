"""What differs between the backends: the migrated schema is the models' schema on each of
them, timestamps keep microseconds, MariaDB/MySQL sessions read committed data after a row
lock, and a server without ``SKIP LOCKED`` is refused with a message saying why."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tuner_service.db import create_db_engine, server_problem, wait_for_database
from tuner_service.migrate import upgrade
from tuner_service.models import Base, WorkerRow
from tuner_service.repository import Repository


def _schema_diff(url: str) -> list[object]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    # Optuna's tables share the database; compare ours only.
                    "include_name": lambda name, kind, _parent: kind != "table"
                    or str(name).startswith("tuner_"),
                },
            )
            return [d for d in compare_metadata(ctx, Base.metadata)
                    if "tuner_alembic_version" not in repr(d)]
    finally:
        engine.dispose()


def test_migrations_give_the_models_schema(db_url: str) -> None:
    upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_heartbeats_keep_microseconds(db_url: str) -> None:
    upgrade(db_url)
    engine = create_db_engine(db_url)
    try:
        repo = Repository(engine)
        repo.register_worker(worker_id="w", host="h", pid=1, device="cpu", info={})
        for _ in range(5):  # one of five heartbeats with a zero fraction is 1e-30 unlikely
            repo.heartbeat("w")
            with repo.session() as s:
                beat = s.get(WorkerRow, "w")
                assert beat is not None
                stamp: datetime = beat.last_heartbeat
            if stamp.microsecond:
                break
        assert stamp.microsecond != 0
    finally:
        engine.dispose()


@pytest.mark.mariadb
def test_mariadb_sessions_read_committed(mariadb_url: str) -> None:
    engine = create_db_engine(mariadb_url)
    try:
        wait_for_database(engine)  # a supported server: no error
        with engine.connect() as conn:
            level = conn.execute(sa.text("SELECT @@tx_isolation")).scalar_one()
        assert level == "READ-COMMITTED"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("10.5.23-MariaDB-0+deb11u1", True),
        ("10.6.0-MariaDB", False),
        ("10.11.19-MariaDB-0+deb12u1", False),
        ("11.4.2-MariaDB", False),
        ("5.7.44", True),
        ("8.0.0-dmr", True),
        ("8.0.36", False),
        ("8.4.0", False),
    ],
)
def test_servers_without_skip_locked_are_refused(version: str, refused: bool) -> None:
    problem = server_problem(version)
    assert (problem is not None) == refused
    if problem is not None:
        assert "SKIP LOCKED" in problem and version in problem


def test_a_worker_waits_for_the_schema_and_refuses_one_it_does_not_know(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tuner-worker`` checks the schema before it starts: behind (the API that migrates is
    still starting) it waits and starts once migrated; still behind after ``--schema-wait`` it
    exits 2 saying which revision it needs; newer than it knows it exits 2 at once."""
    import threading
    import time

    from typer.testing import CliRunner

    from tuner_service.migrate import VERSION_TABLE, head_revision, schema_problem
    from workers.daemon import app

    head = head_revision()
    behind = schema_problem(db_url, 0.0)
    assert behind is not None and "none" in behind and head in behind and "migrate" in behind
    result = CliRunner().invoke(
        app,
        ["--schema-wait", "0", "--trials-per-device", "1", "--database-url", db_url],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    timer = threading.Timer(0.5, upgrade, args=(db_url,))
    timer.start()
    assert schema_problem(db_url, 60.0, interval=0.1) is None  # migrated while it waited
    timer.join()
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
    finally:
        engine.dispose()

    def no_waiting(_s: float) -> None:
        raise AssertionError("a schema newer than this release is refused at once")

    monkeypatch.setattr(time, "sleep", no_waiting)
    newer = schema_problem(db_url, 60.0, interval=0.1)
    assert newer is not None and "f00d" in newer and "newer" in newer
