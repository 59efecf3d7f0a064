"""``tuner-worker retrain``: train a study's best parameters again on this (worker) host and
report the validation and test metrics. ``tuner-service retrain`` runs this command, so that
the control plane never imports the data plane."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

from tuner_service.errors import TunerError
from tuner_service.logging_setup import setup_logging
from tuner_service.settings import load_settings

app = typer.Typer(add_completion=False, help="Train a study's best trial again.")
console = Console(stderr=True)


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


@app.command()
def retrain(
    study_id: int,
    epochs: int | None = typer.Option(
        None, min=1, help="Epochs to train (default: the study's max_epochs, as the trial)."
    ),
    trial: int | None = typer.Option(
        None, help="Trial number (default: the best; needed for several objectives)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the retrained model here."),
    allow_data_change: bool = typer.Option(
        False, "--allow-data-change", help="Retrain even if the dataset's fingerprint differs."
    ),
    threads: int | None = typer.Option(None, min=1, help="TensorFlow CPU threads."),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="TUNER_DATABASE_URL",
        help="Service database (default sqlite:///./tuner.db).",
    ),
) -> None:
    """Train the best parameters again from the trial's recorded seed and dataset split, then
    report the validation and test metrics."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = load_settings(database_url=database_url)
    setup_logging(settings)
    from tuner_service.service import Services

    from .datasets import DatasetError
    from .retrain import RetrainError
    from .retrain import retrain as run_retrain
    from .runtime import configure_threads

    configure_threads(threads)
    services = Services(settings)
    try:
        report = run_retrain(
            services,
            study_id,
            trial_number=trial,
            epochs=epochs,
            allow_data_change=allow_data_change,
            out=out,
        )
    except (TunerError, RetrainError, DatasetError) as exc:
        _fail(str(exc))
    finally:
        services.close()
    names = report["objectives"]
    recorded = report["recorded_values"] or []
    new = report["retrained_values"] or []
    for name, r, n in zip(names, recorded, new, strict=False):
        console.print(f"{name}: recorded {r:.6f}, retrained {n:.6f}")
    for k, v in (report["test_metrics"] or {}).items():
        console.print(f"{k}: {v:.6f}")
    print(json.dumps(report, indent=2, default=str))
