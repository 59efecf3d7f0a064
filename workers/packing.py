"""``tuner-worker --trials-per-device K``: several worker processes share one device.

One small CNN leaves a modern GPU mostly idle, and on the CPU a small model trains little
faster on two threads than on one. With K > 1 the supervisor starts K children per device:

- **GPU**: each child sees the same GPU (``CUDA_VISIBLE_DEVICES``) and caps its TensorFlow
  memory at about 1/K of the device (``TUNER_GPU_MEMORY_LIMIT_MB``, applied by the child as a
  logical device configuration, so one trial cannot starve the others); labels ``gpu:0#1`` ..
  ``gpu:0#K`` in ``GET /workers``. The GPU's memory comes from ``nvidia-smi``; where it is
  unknown (a MIG instance, no ``nvidia-smi``) the children run with memory growth and no cap.
- **CPU** (``--devices cpu``): K children, each pinned (CPU affinity, set by the parent
  before the child starts) to its share of the cores this process may use, with that many
  TensorFlow threads (unless ``--threads`` says otherwise); labels ``cpu#1`` .. ``cpu#K``.

``--trials-per-device auto`` (:func:`auto_trials_per_device`): on a GPU one child per
:data:`GPU_MIB_PER_TRIAL` MiB of its memory, at most :data:`MAX_TRIALS_PER_GPU` and at most
the host's cores per GPU (each child needs a core for Python and its input pipeline); 1 when
the memory is unknown. On the CPU one child per core, at most one per
:data:`CPU_MIB_PER_TRIAL` MiB of RAM (a worker process with TensorFlow holds about 0.7 GiB).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from .supervisor import GPU_MEMORY_LIMIT_ENV, Device

__all__ = [
    "CPU_MIB_PER_TRIAL",
    "GPU_MEMORY_LIMIT_ENV",
    "GPU_MIB_PER_TRIAL",
    "MAX_TRIALS_PER_GPU",
    "TrialsPerDeviceError",
    "auto_trials_per_device",
    "cpu_slots",
    "gpu_memory_mib",
    "gpu_slots",
    "parse_trials_per_device",
]

log = logging.getLogger(__name__)

GPU_MIB_PER_TRIAL = 4096
MAX_TRIALS_PER_GPU = 8
CPU_MIB_PER_TRIAL = 2048
#: Memory left to the CUDA context and the allocator's slack of each child when capping.
GPU_RESERVE_MIB = 512

_SMI_MEMORY = re.compile(r"^\s*(\d+),\s*(\S+),\s*(\d+)\s*$")


class TrialsPerDeviceError(ValueError):
    """A ``--trials-per-device`` value that is neither ``auto`` nor a positive integer."""


def parse_trials_per_device(text: str) -> int | None:
    """``"auto"`` -> ``None``; ``"3"`` -> 3; anything else raises
    :class:`TrialsPerDeviceError`."""
    value = text.strip().lower()
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise TrialsPerDeviceError(f"expected 'auto' or a positive integer, got {text!r}")
    return int(value)


def gpu_memory_mib(
    *,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> dict[str, int]:
    """Total memory of each GPU in MiB, keyed by its index and by its UUID (``{}`` without
    ``nvidia-smi`` or when it fails)."""
    smi = which("nvidia-smi")
    if smi is None:
        return {}
    cmd = [smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"]
    try:
        res = run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi memory query failed (%s)", exc)
        return {}
    if res.returncode != 0:
        return {}
    out: dict[str, int] = {}
    for line in res.stdout.splitlines():
        if m := _SMI_MEMORY.match(line):
            out[m.group(1)] = out[m.group(2)] = int(m.group(3))
    return out


def _usable_memory_mib() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError, AttributeError):
        return 0


def auto_trials_per_device(
    *,
    gpu_mib: int | None = None,
    n_gpus: int = 0,
    cpu_count: int | None = None,
    ram_mib: int | None = None,
) -> int:
    """The ``auto`` rule (module docstring). With ``n_gpus`` > 0: children per GPU from its
    memory ``gpu_mib`` (``None``: unknown -> 1); else children on the CPU."""
    cores = max(1, cpu_count if cpu_count is not None else len(_available_cpus()))
    if n_gpus > 0:
        if not gpu_mib:
            return 1
        k = min(gpu_mib // GPU_MIB_PER_TRIAL, MAX_TRIALS_PER_GPU, cores // n_gpus)
        return max(1, k)
    ram = ram_mib if ram_mib is not None else _usable_memory_mib()
    by_ram = ram // CPU_MIB_PER_TRIAL if ram else cores
    return max(1, min(cores, by_ram))


def gpu_slots(
    gpus: Sequence[Device], k: int | None, memory: Mapping[str, int]
) -> list[Device]:
    """``k`` children per GPU (``None``: the auto rule, per GPU), each capped at its share of
    the GPU's memory (``memory``: MiB by index/UUID, from :func:`gpu_memory_mib`)."""
    out: list[Device] = []
    for gpu in gpus:
        total = memory.get(gpu.visible)
        n = k if k is not None else auto_trials_per_device(gpu_mib=total, n_gpus=len(gpus))
        if n == 1:
            out.append(gpu)
            continue
        cap = None
        if total:
            cap = max(256, (total - GPU_RESERVE_MIB * n) // n)
        else:
            log.warning("memory of %s unknown: its %d workers run without a cap", gpu.label, n)
        out += [
            replace(gpu, label=f"{gpu.label}#{i + 1}", memory_limit_mib=cap) for i in range(n)
        ]
    return out


def _available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_slots(
    k: int, cpus: Sequence[int] | None = None, threads: int | None = None
) -> list[Device]:
    """``k`` CPU children, each pinned to a contiguous share of ``cpus`` (default: the cores
    this process may use) with that many TensorFlow threads (``threads`` overrides). With more
    children than cores, children share cores round-robin, one core each."""
    cores = sorted(cpus) if cpus is not None else _available_cpus()
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out = []
    for i in range(k):
        if k <= len(cores):
            share = tuple(cores[i * len(cores) // k : (i + 1) * len(cores) // k])
        else:
            share = (cores[i % len(cores)],)
        out.append(
            Device(
                visible="-1",
                label=f"cpu#{i + 1}",
                cpus=share,
                threads=threads if threads is not None else len(share),
            )
        )
    return out
