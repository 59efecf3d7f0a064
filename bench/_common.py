"""Shared helpers of the benchmark scripts (not a benchmark itself).

Each script is run as ``python bench/NAME.py``, so this directory is ``sys.path[0]`` and the
scripts ``import _common``. Nothing here touches the service's code: databases are fresh SQLite
files in a temporary directory or fresh PostgreSQL databases (:func:`fresh_database`),
migrated with :func:`tuner_service.migrate.upgrade`.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the package is installed editable; this is a fallback
    sys.path.insert(1, str(REPO_ROOT))


#: PostgreSQL server on which the benchmarks create (and drop) their databases.
PG_ADMIN_URL = os.environ.get(
    "TUNER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

#: The benchmarks' fixed model (the issue's): 2 conv blocks x 16 filters, batch norm, GAP,
#: Dense 64, Adam 1e-3, batch 32, every epoch run (no early stopping).
SMALL_CNN: dict[str, Any] = {
    "conv_blocks": 2,
    "convs_per_block": 1,
    "filters": 16,
    "kernel_size": 3,
    "batch_norm": True,
    "head": "gap",
    "dense_layers": 1,
    "dense_units": 64,
    "dropout": 0.2,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "batch_size": 32,
    "early_stopping_patience": 0,
}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def fresh_database(kind: str, tmp: Path, name: str) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``tmp``, or (``kind`` ``postgres``) a
    new database on :data:`PG_ADMIN_URL`, dropped afterwards."""
    if kind == "sqlite":
        yield sqlite_url(tmp / f"{name}.db")
        return
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    db = f"tuner_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=db).render_as_string(False)
    finally:
        with admin.connect() as conn:
            kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            conn.execute(sa.text(kill), {"n": db})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
        admin.dispose()


def migrated_services(db: Path | str, **settings_overrides: Any):  # type: ignore[no-untyped-def]
    """The ``Services`` on a fresh, migrated database (a SQLite file path, or a URL)."""
    from tuner_service.migrate import upgrade
    from tuner_service.service import Services
    from tuner_service.settings import Settings

    url = db if isinstance(db, str) else sqlite_url(db)
    upgrade(url)
    # _env_file=None: a .env in the working directory must not change the benchmark.
    settings = Settings(database_url=url, _env_file=None, **settings_overrides)  # type: ignore[call-arg]
    return Services(settings)


def quiet_logging(log_file: Path | None = None) -> None:
    """Log INFO to a file (as a real worker logs every epoch), nothing to the terminal."""
    root = logging.getLogger()
    root.handlers[:] = []
    if log_file is not None:
        h = logging.FileHandler(log_file)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
    else:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()


def versions(with_tf: bool) -> str:
    import optuna
    import sqlalchemy

    parts = [
        f"python {platform.python_version()}",
        f"optuna {optuna.__version__}",
        f"sqlalchemy {sqlalchemy.__version__}",
    ]
    if with_tf:
        import keras
        import tensorflow as tf

        parts += [f"tensorflow {tf.__version__}", f"keras {keras.__version__}"]
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPU cores, " + ", ".join(parts)


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small Markdown table (pastes into BENCHMARKS.md as is)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |" for r in cells
    ]
    return "\n".join([line, sep, *body])
