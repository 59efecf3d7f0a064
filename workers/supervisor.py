"""``tuner-worker --devices``: one worker process per GPU, pinned with ``CUDA_VISIBLE_DEVICES``
(or K per GPU, or K on the CPU, with ``--trials-per-device``: :mod:`workers.packing`).

The parent never imports TensorFlow (a process that has initialised CUDA cannot hand a GPU to
a child cleanly, and the import alone costs seconds and memory). It works out the devices
(:func:`resolve_devices`), starts one child per GPU -- ``python -m workers.daemon --device
gpu:N ...`` with ``CUDA_VISIBLE_DEVICES=N`` and ``TF_FORCE_GPU_ALLOW_GROWTH=true`` -- and then
(:class:`Supervisor`):

- restarts a child that dies (non-zero exit or a signal), after an exponential backoff capped
  at 30 s (:func:`restart_delay`), reset once a child has stayed up a while;
- leaves a child that exits 0 alone: it finished (``--once``, ``--max-trials``,
  ``--exit-when-idle``) or was stopped on purpose; the parent exits 0 when none is left;
- forwards the first SIGTERM/SIGINT to every child (each stops at the end of its epoch and hands
  its trial back) and exits 0 once they have exited; a second signal SIGKILLs them and exits.
Children run in their own session (a terminal's Ctrl-C reaches them once, through the parent)
and, on Linux, get SIGTERM if the parent dies.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

__all__ = [
    "CHILD_COMMAND_ENV",
    "GPU_MEMORY_LIMIT_ENV",
    "Device",
    "DeviceSpecError",
    "Supervisor",
    "child_command",
    "child_env",
    "detect_gpus",
    "parse_devices",
    "resolve_devices",
    "restart_delay",
]

log = logging.getLogger(__name__)

#: Overrides the child's command (shlex-split; tests start cheap stand-in workers with it). The
#: child arguments (``--device gpu:N`` and the passed-through options) are appended.
CHILD_COMMAND_ENV = "TUNER_WORKER_CHILD_COMMAND"
#: A child's GPU memory cap in MiB (read by ``workers.daemon`` before TensorFlow starts).
GPU_MEMORY_LIMIT_ENV = "TUNER_GPU_MEMORY_LIMIT_MB"

#: A GPU id as ``CUDA_VISIBLE_DEVICES`` takes it: an index, or a GPU / MIG UUID.
_GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/_-]+)$")
_SMI_GPU = re.compile(r"^GPU (\d+):.*\(UUID: (GPU-[^)]+)\)")
_SMI_MIG = re.compile(r"^\s+MIG .*Device\s+(\d+):.*\(UUID: (MIG-[^)]+)\)")


class DeviceSpecError(ValueError):
    """A ``--devices`` value that is neither ``all``, ``cpu`` nor a list of GPU ids."""


@dataclass(frozen=True)
class Device:
    """One child worker's device: ``visible`` goes into its ``CUDA_VISIBLE_DEVICES`` (``-1``:
    the CPU), ``label`` is what it registers with (``gpu:0``; ``gpu:0/mig:1`` for a MIG
    instance; ``gpu:0#2``, ``cpu#1`` for one of several children on a device, see
    :mod:`workers.packing`). ``memory_limit_mib`` caps its GPU memory, ``cpus`` pins it to
    those cores, ``threads`` sets its TensorFlow threads."""

    visible: str
    label: str
    memory_limit_mib: int | None = None
    cpus: tuple[int, ...] = ()
    threads: int | None = None

    def describe(self) -> str:
        cap = f", memory cap {self.memory_limit_mib} MiB" if self.memory_limit_mib else ""
        cpus = f", CPUs {','.join(map(str, self.cpus))}" if self.cpus else ""
        return f"CUDA_VISIBLE_DEVICES={self.visible}{cap}{cpus}"


def _device(gpu_id: str) -> Device:
    return Device(visible=gpu_id, label=f"gpu:{gpu_id}")


def parse_devices(spec: str) -> list[Device] | None:
    """An explicit ``--devices`` list: ``"0,1,2,3"`` (or GPU/MIG UUIDs) -> one device each;
    ``"cpu"`` -> ``[]``; ``"all"`` -> ``None`` (detect). Anything else raises
    :class:`DeviceSpecError`."""
    text = spec.strip()
    if text.lower() == "all":
        return None
    if text.lower() == "cpu":
        return []
    ids = [part.strip() for part in text.split(",")]
    bad = [i for i in ids if not _GPU_ID.match(i)]
    if not text or bad:
        raise DeviceSpecError(
            f"expected 'all', 'cpu' or comma-separated GPU ids such as 0,1,2,3; "
            f"got {spec!r}" + (f" (not a GPU id: {', '.join(map(repr, bad))})" if bad else "")
        )
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DeviceSpecError(f"GPU {', '.join(dupes)} listed more than once")
    return [_device(i) for i in ids]


def _parse_visible(value: str) -> list[Device]:
    """The GPUs an inherited ``CUDA_VISIBLE_DEVICES`` names (``""`` or ``-1``: none). CUDA
    stops at the first invalid entry, and so does this."""
    out: list[Device] = []
    for part in value.split(","):
        part = part.strip()
        if not _GPU_ID.match(part):
            break
        out.append(_device(part))
    return out


def _parse_nvidia_smi(output: str) -> list[Device]:
    """``nvidia-smi -L``: one device per GPU, or one per MIG instance of a GPU in MIG mode."""
    out: list[Device] = []
    gpu: str | None = None
    migs: list[Device] = []

    def flush() -> None:
        if gpu is not None:
            out.extend(migs or [_device(gpu)])

    for line in output.splitlines():
        if m := _SMI_GPU.match(line):
            flush()
            gpu, migs = m.group(1), []
        elif (m := _SMI_MIG.match(line)) and gpu is not None:
            migs.append(Device(visible=m.group(2), label=f"gpu:{gpu}/mig:{m.group(1)}"))
    flush()
    return out


def detect_gpus(
    environ: Mapping[str, str] | None = None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[Device]:
    """The GPUs of this host, without importing TensorFlow: an inherited ``CUDA_VISIBLE_DEVICES``
    (a scheduler's allocation, a user hiding GPUs) wins, with its ids (none for ``""`` / ``-1``);
    otherwise ``nvidia-smi -L`` when it is on the PATH; otherwise none."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _parse_visible(visible)
    smi = which("nvidia-smi")
    if smi is None:
        return []
    try:
        res = run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi -L failed (%s): no GPU used", exc)
        return []
    if res.returncode != 0:
        log.warning("nvidia-smi -L exited %d: %s", res.returncode, (res.stderr or "").strip())
        return []
    return _parse_nvidia_smi(res.stdout)


def resolve_devices(
    spec: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[Device]:
    """The GPUs to start children on; ``[]`` means one worker on the CPU, in-process.
    ``None`` (no ``--devices``) behaves as ``all``: every GPU found, else the CPU."""
    devices = parse_devices(spec if spec is not None else "all")
    if devices is None:
        devices = detect_gpus(environ, which=which, run=run)
    return devices


def restart_delay(failures: int, *, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds before a restart after ``failures`` crashes in a row: doubling, capped at ``cap``."""
    if failures < 1:
        return 0.0
    return float(min(cap, base * 2.0 ** min(failures - 1, 62)))


def child_command(override: str | None = None) -> list[str]:
    """How a child worker is started (before its arguments): this interpreter running
    ``workers.daemon``, or the shlex-split ``override`` (``TUNER_WORKER_CHILD_COMMAND``)."""
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "workers.daemon"]


def child_env(device: Device, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment, pinned to one GPU with memory growth on -- or, for one of
    several children on a GPU, with its memory cap instead (TensorFlow takes one or the
    other). Device indices mean what ``nvidia-smi`` shows (PCI bus order) unless
    ``CUDA_DEVICE_ORDER`` is already set."""
    env = dict(os.environ if environ is None else environ)
    env["CUDA_VISIBLE_DEVICES"] = device.visible
    env.pop(GPU_MEMORY_LIMIT_ENV, None)
    if device.memory_limit_mib is not None:
        env[GPU_MEMORY_LIMIT_ENV] = str(device.memory_limit_mib)
        env.pop("TF_FORCE_GPU_ALLOW_GROWTH", None)
    else:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


def _child_setup(cpus: tuple[int, ...]) -> Callable[[], None] | None:
    """What runs in a child between fork and exec: the parent-death signal (Linux) and, for
    a CPU share, the CPU affinity (inherited by every thread TensorFlow starts)."""
    if sys.platform != "linux":
        return None

    def setup() -> None:  # pragma: no cover - runs in the child before exec
        _set_parent_death_signal()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when the parent dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Child:
    device: Device
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # crashes in a row
    restart_at: float | None = None  # a crash is waiting for its restart
    done: bool = False  # exited 0: finished, never restarted
    starts: int = 0
    signalled: int = 0  # parent signals forwarded to this process


@dataclass
class Supervisor:
    """Runs one child worker per device until they finish or the parent is told to stop."""

    devices: Sequence[Device]
    args: Sequence[str] = ()
    command: Sequence[str] = field(default_factory=child_command)
    environ: Mapping[str, str] | None = None
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    #: A child up this long before it crashes starts its backoff again from ``backoff_base``.
    stable_after: float = 60.0
    tick: float = 0.1
    children: list[_Child] = field(init=False)
    _signals: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("a supervisor needs at least one device")
        self.children = [_Child(d) for d in self.devices]

    # --- signals --------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # only recorded here; the main loop forwards (no work inside a signal handler)
        self._signals.append(signum)

    # --- children -------------------------------------------------------------------------
    def _argv(self, child: _Child) -> list[str]:
        threads = child.device.threads
        extra = ["--threads", str(threads)] if threads is not None else []
        return [*self.command, "--device", child.device.label, *extra, *self.args]

    def _start(self, child: _Child) -> None:
        argv = self._argv(child)
        child.proc = subprocess.Popen(
            argv,
            env=child_env(child.device, self.environ),
            start_new_session=True,  # a terminal's Ctrl-C reaches the children via the parent
            preexec_fn=_child_setup(child.device.cpus),
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        child.starts += 1
        child.signalled = 0
        what = "started" if child.starts == 1 else "restarted"
        log.info("worker %s %s (pid %d, %s)", child.device.label, what, child.proc.pid,
                 child.device.describe())

    def _running(self) -> list[_Child]:
        return [c for c in self.children if c.proc is not None and c.proc.poll() is None]

    def _reap(self, now: float, stopping: bool) -> None:
        for child in self.children:
            proc = child.proc
            if proc is None or child.done or child.restart_at is not None:
                continue  # not started, finished, or a crash already waiting for its restart
            code = proc.poll()
            if code is None:
                continue
            if stopping:
                child.done = True
                log.info("worker %s (pid %d) %s", child.device.label, proc.pid, describe_exit(code))
            elif code == 0:
                child.done = True
                log.info("worker %s (pid %d) finished", child.device.label, proc.pid)
            else:
                if now - child.started_at >= self.stable_after:
                    child.failures = 0
                child.failures += 1
                delay = restart_delay(child.failures, base=self.backoff_base, cap=self.backoff_cap)
                child.restart_at = now + delay
                log.warning(
                    "worker %s (pid %d) %s; restarting it in %.0fs (crash %d in a row)",
                    child.device.label,
                    proc.pid,
                    describe_exit(code),
                    delay,
                    child.failures,
                )

    def _forward(self, signum: int, count: int) -> None:
        for child in self._running():
            assert child.proc is not None
            if child.signalled < count:
                child.signalled = count
                child.proc.send_signal(signum)

    def _kill_all(self) -> None:
        for child in self._running():
            assert child.proc is not None
            child.proc.kill()
        for child in self.children:
            if child.proc is not None:
                child.proc.wait()

    def run(self) -> int:
        """Start the children and supervise them; the parent's exit code."""
        labels = ", ".join(d.label for d in self.devices)
        log.info("starting %d worker processes: %s", len(self.children), labels)
        for child in self.children:
            if self._signals:
                break
            self._start(child)
        while True:
            n_signals = len(self._signals)
            if n_signals >= 2:
                log.warning("second signal: killing the workers now")
                self._kill_all()
                return 130
            stopping = n_signals == 1
            if stopping:
                # the first signal: each child stops at the end of its epoch (sent once only:
                # a second one would make the child exit at once)
                self._forward(self._signals[0], 1)
                for child in self.children:
                    if child.restart_at is not None:  # crashed: no restart now
                        child.restart_at = None
                        child.done = True
            now = time.monotonic()
            self._reap(now, stopping)
            if not stopping:
                for child in self.children:
                    if child.restart_at is not None and now >= child.restart_at:
                        self._start(child)
            pending = [c for c in self.children if c.restart_at is not None]
            if not self._running() and not pending:
                if stopping:
                    log.info("all workers stopped")
                else:
                    log.info("all workers finished")
                return 0
            time.sleep(self.tick)
