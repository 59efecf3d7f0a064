"""``tuner-worker``: the worker daemon's command line.

``--devices`` (default: every GPU found, else the CPU) decides the shape: GPUs get one child
process each (``--trials-per-device K``: K each, :mod:`workers.packing`) under a supervisor
(:mod:`workers.supervisor`, which never imports TensorFlow); the CPU gets one worker in this
process, or K pinned children with ``--trials-per-device K``; an explicit ``--device LABEL``
(what each child runs) gets one worker in this process. ``tuner-worker retrain
STUDY_ID ...`` trains a study's best trial again (:mod:`workers.retrain_cli`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import typer

from tuner_service.logging_setup import setup_logging
from tuner_service.settings import Settings, load_settings

from .execution import MIXED_PRECISION_MODES, ExecutionOptions, decide_mixed_precision

if TYPE_CHECKING:
    from .supervisor import Device

app = typer.Typer(add_completion=False, help="Run trials of queued studies on this host.")


@app.command()
def run(
    database_url: str | None = typer.Option(
        None, envvar="TUNER_DATABASE_URL", help="Service database (default sqlite:///./tuner.db)."
    ),
    devices: str | None = typer.Option(
        None,
        "--devices",
        help="'all' (one worker process per GPU found), 'cpu' (one CPU worker), or GPU ids "
        "such as 0,1,2,3 (one process each, pinned with CUDA_VISIBLE_DEVICES). "
        "Default: all GPUs found, else the CPU.",
    ),
    once: bool = typer.Option(False, "--once", help="Run one trial, then exit."),
    max_trials: int | None = typer.Option(None, min=1, help="Exit after this many trials."),
    exit_when_idle: float | None = typer.Option(
        None, min=0, help="Exit after this many seconds without work."
    ),
    device: str | None = typer.Option(
        None,
        help="Run one worker in this process, registered with this device label, on the "
        "GPUs this process sees (what each child of --devices runs).",
    ),
    threads: int | None = typer.Option(
        None, min=1, help="TensorFlow CPU threads (default: all cores)."
    ),
    trials_per_device: str = typer.Option(
        "1",
        "--trials-per-device",
        help="Worker processes per device: a number or 'auto'. GPUs: K per GPU, each capped "
        "at ~1/K of its memory; --devices cpu: K pinned to their share of the cores.",
    ),
    mixed_precision: str = typer.Option(
        "auto",
        "--mixed-precision",
        help="auto (on when every GPU has tensor cores, compute capability >= 7.0), on (any "
        "GPU), off. Never on the CPU.",
    ),
    steps_per_execution: str = typer.Option(
        "auto",
        "--steps-per-execution",
        help="Batches per call into TensorFlow: a number, or auto (32 for trials of at "
        "least 1,000 batches, else 1).",
    ),
    schema_wait: float = typer.Option(
        120.0,
        "--schema-wait",
        min=0.0,
        help="Seconds to wait at start for the database schema to reach this release's "
        "revision (the API migrates it when it starts); then exit 2 with the reason.",
    ),
    heartbeat_interval: float | None = typer.Option(None, min=0.1),
    poll_interval: float | None = typer.Option(None, min=0.05),
    log_json: bool | None = typer.Option(None, "--log-json/--no-log-json"),
) -> None:
    from .packing import TrialsPerDeviceError, parse_trials_per_device
    from .supervisor import DeviceSpecError, resolve_devices

    if device is not None and devices is not None:
        raise typer.BadParameter("use either --devices or --device", param_hint="'--devices'")
    if mixed_precision not in MIXED_PRECISION_MODES:
        raise typer.BadParameter(
            f"expected one of {', '.join(MIXED_PRECISION_MODES)}, got {mixed_precision!r}",
            param_hint="'--mixed-precision'",
        )
    spe = _parse_steps_per_execution(steps_per_execution)
    try:
        per_device = parse_trials_per_device(trials_per_device)
    except TrialsPerDeviceError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--trials-per-device'") from exc
    if device is None:
        try:
            gpus = resolve_devices(devices)
        except DeviceSpecError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--devices'") from exc
    settings = load_settings(
        database_url=database_url,
        heartbeat_interval=heartbeat_interval,
        poll_interval=poll_interval,
        log_json=log_json,
    )
    setup_logging(settings)
    slots = _slots(gpus, per_device, threads) if device is None else []
    if slots:
        args = _child_args(
            once=once,
            max_trials=max_trials,
            exit_when_idle=exit_when_idle,
            threads=threads if gpus else None,  # a CPU child's threads come with its share
            mixed_precision=mixed_precision,
            steps_per_execution=steps_per_execution,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            log_json=log_json,
        )
        if schema_wait != 120.0:
            args += ["--schema-wait", repr(schema_wait)]
        raise typer.Exit(_supervise(slots, args, database_url))
    if device is None:
        # the CPU: hide any GPU from TensorFlow (imported below, after this)
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        device = "cpu"
        if devices is None or devices.strip().lower() == "all":
            logging.getLogger(__name__).info("no GPU found: one worker on the CPU")
    raise typer.Exit(
        _run_worker(
            settings,
            device=device,
            once=once,
            max_trials=max_trials,
            exit_when_idle=exit_when_idle,
            threads=threads,
            mixed_precision=mixed_precision,
            steps_per_execution=spe,
            schema_wait=schema_wait,
        )
    )


def _parse_steps_per_execution(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise typer.BadParameter(
            f"expected 'auto' or a positive integer, got {text!r}",
            param_hint="'--steps-per-execution'",
        )
    return int(text)


def _slots(gpus: list[Device], per_device: int | None, threads: int | None) -> list[Device]:
    """The children to supervise: ``per_device`` per GPU (``None``: auto), or on the CPU
    (no GPUs) that many pinned CPU children when more than one; ``[]``: one worker in this
    process."""
    from .packing import auto_trials_per_device, cpu_slots, gpu_memory_mib, gpu_slots

    if gpus:
        memory = gpu_memory_mib() if per_device != 1 else {}
        return gpu_slots(gpus, per_device, memory)
    k = per_device if per_device is not None else auto_trials_per_device()
    return cpu_slots(k, threads=threads) if k > 1 else []


def _child_args(
    *,
    once: bool,
    max_trials: int | None,
    exit_when_idle: float | None,
    threads: int | None,
    mixed_precision: str,
    steps_per_execution: str,
    heartbeat_interval: float | None,
    poll_interval: float | None,
    log_json: bool | None,
) -> list[str]:
    """The options every child worker gets (the database URL goes by environment, so that a
    password never shows in ``ps``)."""
    args: list[str] = []
    if once:
        args.append("--once")
    if max_trials is not None:
        args += ["--max-trials", str(max_trials)]
    if exit_when_idle is not None:
        args += ["--exit-when-idle", repr(exit_when_idle)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if mixed_precision != "auto":
        args += ["--mixed-precision", mixed_precision]
    if steps_per_execution != "auto":
        args += ["--steps-per-execution", steps_per_execution]
    if heartbeat_interval is not None:
        args += ["--heartbeat-interval", repr(heartbeat_interval)]
    if poll_interval is not None:
        args += ["--poll-interval", repr(poll_interval)]
    if log_json is not None:
        args.append("--log-json" if log_json else "--no-log-json")
    return args


def _supervise(gpus: list[Device], args: list[str], database_url: str | None) -> int:
    from .supervisor import CHILD_COMMAND_ENV, Supervisor, child_command

    environ = dict(os.environ)
    if database_url is not None:
        environ["TUNER_DATABASE_URL"] = database_url
    supervisor = Supervisor(
        gpus, args, command=child_command(os.environ.get(CHILD_COMMAND_ENV)), environ=environ
    )
    supervisor.install_signal_handlers()
    return supervisor.run()


def _run_worker(
    settings: Settings,
    *,
    device: str,
    once: bool,
    max_trials: int | None,
    exit_when_idle: float | None,
    threads: int | None,
    mixed_precision: str,
    steps_per_execution: int | None,
    schema_wait: float = 120.0,
) -> int:
    """One worker in this process (imports TensorFlow), once the database schema is this
    release's (exit 2 with the reason otherwise)."""
    from tuner_service.migrate import schema_problem
    from tuner_service.service import Services

    problem = schema_problem(settings.database_url, schema_wait)
    if problem is not None:
        logging.getLogger(__name__).error("not starting: %s", problem)
        return 2

    from .runtime import configure_gpu, configure_threads, gpu_capabilities
    from .supervisor import GPU_MEMORY_LIMIT_ENV
    from .worker import Worker, WorkerOptions

    configure_threads(threads)
    cap = os.environ.get(GPU_MEMORY_LIMIT_ENV)
    gpus = configure_gpu(memory_growth=True, memory_limit_mib=int(cap) if cap else None)
    use_mixed = decide_mixed_precision(mixed_precision, gpu_capabilities() if gpus else [])
    if mixed_precision == "on" and not gpus:
        logging.getLogger(__name__).warning("no GPU visible: mixed precision stays off")
    execution = ExecutionOptions(
        steps_per_execution=steps_per_execution, device_pipeline=bool(gpus)
    )
    services = Services(settings)
    worker = Worker(
        services,
        WorkerOptions(
            device=device,
            once=once,
            max_trials=max_trials,
            mixed_precision=use_mixed,
            exit_when_idle=exit_when_idle,
            execution=execution,
        ),
    )
    worker.install_signal_handlers()
    try:
        return worker.run()
    finally:
        services.close()


def main() -> None:
    """``tuner-worker [OPTIONS]`` runs workers; ``tuner-worker retrain ...`` retrains a trial
    (a subcommand beside the default one, so that the worker's own options stay as they are)."""
    if sys.argv[1:2] == ["retrain"]:
        from .retrain_cli import app as retrain_app

        retrain_app(args=sys.argv[2:], prog_name="tuner-worker retrain")
    else:
        app(prog_name="tuner-worker")


if __name__ == "__main__":
    main()
