"""``tuner-worker``: the worker daemon's command line."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import typer

from tuner_service.logging_setup import setup_logging
from tuner_service.settings import load_settings

app = typer.Typer(add_completion=False, help="Run trials of queued studies on this host.")


@app.command()
def run(
    database_url: str | None = typer.Option(
        None, envvar="TUNER_DATABASE_URL", help="Service database (default sqlite:///./tuner.db)."
    ),
    once: bool = typer.Option(False, "--once", help="Run one trial, then exit."),
    max_trials: int | None = typer.Option(None, min=1, help="Exit after this many trials."),
    exit_when_idle: float | None = typer.Option(
        None, min=0, help="Exit after this many seconds without work."
    ),
    device: str = typer.Option("cpu", help="Device label this worker registers with."),
    threads: int | None = typer.Option(
        None, min=1, help="TensorFlow CPU threads (default: all cores)."
    ),
    mixed_precision: bool = typer.Option(
        False, help="Train in mixed_float16 (used only on a GPU)."
    ),
    heartbeat_interval: float | None = typer.Option(None, min=0.1),
    poll_interval: float | None = typer.Option(None, min=0.05),
    log_json: bool | None = typer.Option(None, "--log-json/--no-log-json"),
) -> None:
    settings = load_settings(
        database_url=database_url,
        heartbeat_interval=heartbeat_interval,
        poll_interval=poll_interval,
        log_json=log_json,
    )
    setup_logging(settings)
    from tuner_service.service import Services

    from .runtime import configure_gpu, configure_threads
    from .worker import Worker, WorkerOptions

    configure_threads(threads)
    gpus = configure_gpu(memory_growth=True)
    use_mixed = mixed_precision and bool(gpus)
    if mixed_precision and not gpus:
        logging.getLogger(__name__).warning("no GPU visible: mixed precision stays off")
    services = Services(settings)
    worker = Worker(
        services,
        WorkerOptions(
            device=device,
            once=once,
            max_trials=max_trials,
            mixed_precision=use_mixed,
            exit_when_idle=exit_when_idle,
        ),
    )
    worker.install_signal_handlers()
    try:
        code = worker.run()
    finally:
        services.close()
    raise typer.Exit(code)


def main() -> None:
    app(prog_name="tuner-worker")


if __name__ == "__main__":
    main()
