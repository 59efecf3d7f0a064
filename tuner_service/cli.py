"""``tuner-service``: serve the API, migrate, submit and watch studies.

Reads ``TUNER_DATABASE_URL`` like the API and the workers; talks to the database directly, so it
works with or without a running API.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import ensembles
from .errors import SpecError, TunerError
from .logging_setup import setup_logging
from .settings import Settings, load_settings
from .spec_file import read_spec_file

app = typer.Typer(add_completion=False, help="Keras CNN hyperparameter tuning service.")
console = Console(stderr=True)
DbOpt = typer.Option(
    None,
    "--database-url",
    envvar="TUNER_DATABASE_URL",
    help="Service database (default sqlite:///./tuner.db).",
)


def _settings(database_url: str | None, **kw: Any) -> Settings:
    return load_settings(database_url=database_url, **kw)


def _services(database_url: str | None) -> Any:
    from .service import Services

    return Services(_settings(database_url))


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


@app.command()
def migrate(
    database_url: str | None = DbOpt,
    check: bool = typer.Option(
        False, "--check", help="Change nothing: exit 0 when the schema is current, else 2."
    ),
    wait: float = typer.Option(
        0.0, min=0.0, help="With --check: keep checking this many seconds (an init container "
        "waiting for the migration job)."
    ),
) -> None:
    """Create or upgrade the service tables (ours by Alembic, Optuna's by Optuna)."""
    settings = _settings(database_url)
    if check:
        from .migrate import wait_until_current

        if not wait_until_current(settings.database_url, wait):
            _fail(f"the database schema is not current after {wait:.0f}s (run: migrate)")
        console.print("database schema is current")
        return
    rev = _upgrade(settings.database_url)
    console.print(f"database at revision {rev}")


def _upgrade(url: str) -> str:
    from .db import UnsupportedDatabaseError
    from .migrate import upgrade

    try:
        return upgrade(url)
    except UnsupportedDatabaseError as exc:
        _fail(str(exc))
        raise


@app.command()
def serve(
    database_url: str | None = DbOpt,
    host: str | None = typer.Option(None, help="Bind address (TUNER_HOST, default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (TUNER_PORT, default 8000)."),
    no_migrate: bool = typer.Option(False, help="Do not migrate the database before serving."),
) -> None:
    """Wait for the database, migrate it, then serve the REST API."""
    import uvicorn

    from .api.app import create_app
    from .heap import freeze_startup_objects

    settings = _settings(database_url, host=host, port=port)
    setup_logging(settings)
    if not no_migrate:
        _upgrade(settings.database_url)
    api = create_app(settings)
    freeze_startup_objects()  # full collections of the loaded libraries stay out of requests
    uvicorn.run(
        api,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        return read_spec_file(path)
    except ValueError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@app.command()
def submit(
    spec_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="SPEC.json or .yaml"),
    database_url: str | None = DbOpt,
    name: str | None = typer.Option(None, help="Override the spec's name."),
) -> None:
    """Queue a study; prints its id."""
    raw = _read_spec(spec_file)
    if name:
        raw["name"] = name
    services = _services(database_url)
    try:
        row = services.create_study(raw)
    except SpecError as exc:
        for p in exc.problems:
            console.print(f"[red]{p.dotted()}[/red]: {p.message}")
        raise typer.Exit(2) from exc
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()
    print(row.id)


@app.command()
def studies(
    database_url: str | None = DbOpt,
    status: str | None = typer.Option(None, help="Only studies with this status."),
) -> None:
    """List studies."""
    services = _services(database_url)
    try:
        data, count = services.list_studies(status=status, limit=1000)
    finally:
        services.close()
    table = Table("id", "name", "status", "engine", "trials", "created")
    for s in data:
        table.add_row(
            str(s["id"]),
            s["name"],
            s["status"],
            s["engine"],
            str(s["n_trials"]),
            s["created_at"][:19],
        )
    Console().print(table)
    console.print(f"{count} studies")


@app.command()
def show(study_id: int, database_url: str | None = DbOpt) -> None:
    """Print a study's details as JSON."""
    services = _services(database_url)
    try:
        print(json.dumps(services.study_detail(study_id), indent=2, default=str))
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()


@app.command()
def watch(
    study_id: int,
    database_url: str | None = DbOpt,
    interval: float = typer.Option(1.0, min=0.1, help="Seconds between refreshes."),
    timeout: float | None = typer.Option(None, help="Give up after this many seconds."),
) -> None:
    """A live progress bar until the study ends; then the best parameters and test metrics."""
    services = _services(database_url)
    started = time.monotonic()
    try:
        detail = services.study_detail(study_id)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(detail["name"], total=detail["n_trials"], info="")
            while True:
                detail = services.study_detail(study_id)
                c = detail["trial_counts"]
                best = detail["best_trial"]
                info = (
                    f"{detail['status']} running={c['running']} pruned={c['pruned']} "
                    f"failed={c['fail']} best="
                    + (f"{best['value']:.4f}" if best and best["value"] is not None else "-")
                )
                progress.update(task, completed=detail["budget"]["finished"], info=info)
                final = detail["status"] in ("completed", "cancelled", "failed")
                evaluating = detail["evaluation_state"] in ("pending", "running")
                if final and not evaluating:
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    _fail(f"study {study_id} still {detail['status']} after {timeout:.0f}s")
                time.sleep(interval)
        _print_outcome(detail)
        if detail["status"] == "failed":
            raise typer.Exit(1)
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()


def _print_outcome(detail: dict[str, Any]) -> None:
    print(
        f"study {detail['id']} '{detail['name']}': {detail['status']}"
        + (f" ({detail['status_reason']})" if detail.get("status_reason") else "")
    )
    c = detail["trial_counts"]
    print(f"trials: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed")
    best = detail["best_trial"]
    if best:
        print(f"best trial #{best['number']}: value {best['value']}")
        print("best params: " + json.dumps(best["params"], sort_keys=True))
    ev = detail.get("evaluation") or {}
    if ev.get("test_metrics"):
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in ev["test_metrics"].items())
        print(f"test metrics of trial #{ev['trial_number']}: {metrics}")
    elif ev:
        print(f"evaluation: {ev}")


@app.command()
def cancel(study_id: int, database_url: str | None = DbOpt) -> None:
    """Cancel a study (finished trials are kept)."""
    services = _services(database_url)
    try:
        print(services.cancel(study_id).status)
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()


@app.command()
def dashboard(
    database_url: str | None = DbOpt,
    host: str = typer.Option("127.0.0.1", help="Bind address (0.0.0.0: every interface)."),
    port: int = typer.Option(8080, min=1, max=65535, help="Port."),
) -> None:
    """Serve optuna-dashboard on the service database: every study of every engine, its
    trials, learning curves and saved models (open http://HOST:PORT/dashboard/)."""
    from .dashboard import serve_dashboard

    settings = _settings(database_url)
    setup_logging(settings)
    serve_dashboard(settings, host=host, port=port)


@app.command()
def export(
    study_id: int,
    out: Path | None = typer.Option(
        None, "--out", "-o",
        help="File (or folder) to write; default: ./studyID-trialN.keras (studyID-ensemble.keras)",
    ),
    ensemble: bool = typer.Option(
        False, "--ensemble", help="The study's ensemble instead (GET /studies/ID/ensemble/model)."
    ),
    database_url: str | None = DbOpt,
) -> None:
    """Write the best trial's saved model (.keras), as GET /studies/ID/best/model does."""
    services = _services(database_url)
    try:
        if ensemble:
            name, data = ensembles.ensemble_model(services, study_id)
        else:
            name, data = services.best_model(study_id)
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()
    path = Path(name) if out is None else (out / name if out.is_dir() else out)
    path.write_bytes(data)
    console.print(f"wrote {path} ({len(data)} bytes)")
    print(path)


@app.command()
def report(
    study_id: int,
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    database_url: str | None = DbOpt,
) -> None:
    """Write the study's report: one self-contained HTML file (charts inlined, no CDN), as
    GET /studies/ID/report serves it."""
    from .report import build_report

    services = _services(database_url)
    try:
        page = build_report(services, study_id)
    except TunerError as exc:
        _fail(str(exc))
    finally:
        services.close()
    out.write_text(page, encoding="utf-8")
    console.print(f"wrote {out} ({len(page.encode())} bytes)")
    print(out)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def retrain(ctx: typer.Context, database_url: str | None = DbOpt) -> None:
    """Train the best parameters again from the trial's recorded seed and dataset split (on a
    host with TensorFlow: a worker host), then report the validation and test metrics. Runs
    ``tuner-worker retrain`` with the same arguments (see ``tuner-service retrain --help``)."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("workers") is None:  # located, not imported
        _fail("retrain runs on a worker host (pip install -e '.[cpu]' or '.[gpu]')")
    env = dict(os.environ)
    if database_url is not None:  # by environment: a password never shows in ``ps``
        env["TUNER_DATABASE_URL"] = database_url
    # The data plane's command, run as a process: the control plane never imports it.
    command = [sys.executable, "-m", "workers.daemon", "retrain", *ctx.args]
    raise typer.Exit(subprocess.run(command, env=env, check=False).returncode)


def main() -> None:
    app(prog_name="tuner-service")


if __name__ == "__main__":
    main()
