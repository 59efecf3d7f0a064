"""``tuner-worker --trials-per-device``: the auto rule, K children per fake GPU with their
memory caps and labels, the CPU affinity split, the child's GPU configuration (a fake
``tf.config``), and real supervised stand-in children (no TensorFlow) for both."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from processes import stop_processes, wait_until
from test_supervisor import _by_device, _start_parent, db  # noqa: F401  (fixture)
from typer.testing import CliRunner

from tuner_service.service import Services
from workers import daemon
from workers.packing import (
    GPU_MEMORY_LIMIT_ENV,
    GPU_RESERVE_MIB,
    TrialsPerDeviceError,
    auto_trials_per_device,
    cpu_slots,
    gpu_memory_mib,
    gpu_slots,
    parse_trials_per_device,
)
from workers.supervisor import Device, Supervisor, child_env

SMI_MEMORY = "0, GPU-1111, 81559\n1, GPU-2222, 40960\n"


def test_parse_trials_per_device() -> None:
    assert parse_trials_per_device("auto") is None
    assert parse_trials_per_device(" AUTO ") is None
    assert parse_trials_per_device("3") == 3
    for bad in ("0", "-1", "two", "", "1.5"):
        with pytest.raises(TrialsPerDeviceError, match="'auto' or a positive integer"):
            parse_trials_per_device(bad)


def test_auto_rule() -> None:
    # GPUs: one child per 4 GiB, at most 8, at most the cores per GPU; unknown memory: 1
    assert auto_trials_per_device(gpu_mib=81559, n_gpus=1, cpu_count=16) == 8
    assert auto_trials_per_device(gpu_mib=16384, n_gpus=1, cpu_count=16) == 4
    assert auto_trials_per_device(gpu_mib=81559, n_gpus=4, cpu_count=8) == 2
    assert auto_trials_per_device(gpu_mib=2048, n_gpus=1, cpu_count=16) == 1
    assert auto_trials_per_device(gpu_mib=None, n_gpus=1, cpu_count=16) == 1
    # the CPU: one per core, at most one per 2 GiB of RAM
    assert auto_trials_per_device(cpu_count=2, ram_mib=24_000) == 2
    assert auto_trials_per_device(cpu_count=16, ram_mib=8192) == 4
    assert auto_trials_per_device(cpu_count=4, ram_mib=1000) == 1


def test_gpu_memory_from_nvidia_smi() -> None:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:] == ["--query-gpu=index,uuid,memory.total",
                            "--format=csv,noheader,nounits"]
        return subprocess.CompletedProcess(argv, 0, stdout=SMI_MEMORY, stderr="")

    mem = gpu_memory_mib(which=lambda _: "nvidia-smi", run=run)
    assert mem == {"0": 81559, "GPU-1111": 81559, "1": 40960, "GPU-2222": 40960}
    assert gpu_memory_mib(which=lambda _: None) == {}


def test_k_children_per_gpu_with_caps_and_labels() -> None:
    gpus = [Device("0", "gpu:0"), Device("GPU-2222", "gpu:GPU-2222")]
    mem = {"0": 81559, "GPU-2222": 40960}
    slots = gpu_slots(gpus, 3, mem)
    assert [d.label for d in slots] == [
        "gpu:0#1", "gpu:0#2", "gpu:0#3", "gpu:GPU-2222#1", "gpu:GPU-2222#2", "gpu:GPU-2222#3"]
    assert [d.visible for d in slots] == ["0"] * 3 + ["GPU-2222"] * 3
    cap0 = (81559 - 3 * GPU_RESERVE_MIB) // 3
    assert [d.memory_limit_mib for d in slots] == [cap0] * 3 + [(40960 - 1536) // 3] * 3
    assert 3 * cap0 <= 81559  # the children fit on the device together
    # K = 1 leaves the device as it was; unknown memory: K children without a cap
    assert gpu_slots(gpus, 1, mem) == gpus
    assert [d.memory_limit_mib for d in gpu_slots([Device("5", "gpu:5")], 2, {})] == [None] * 2
    # auto decides per GPU from its memory (and this host's cores)
    auto = gpu_slots([Device("0", "gpu:0")], None, {"0": 16384})
    assert len(auto) == max(1, min(4, len(os.sched_getaffinity(0))))


def test_child_env_carries_the_cap_instead_of_memory_growth() -> None:
    capped = child_env(Device("0", "gpu:0#2", memory_limit_mib=20000),
                       {"TF_FORCE_GPU_ALLOW_GROWTH": "true"})
    assert capped[GPU_MEMORY_LIMIT_ENV] == "20000"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in capped  # TensorFlow takes one or the other
    plain = child_env(Device("0", "gpu:0"), {GPU_MEMORY_LIMIT_ENV: "1"})
    assert GPU_MEMORY_LIMIT_ENV not in plain and plain["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_cpu_affinity_split() -> None:
    two = cpu_slots(2, cpus=[0, 1])
    assert [(d.label, d.cpus, d.threads, d.visible) for d in two] == [
        ("cpu#1", (0,), 1, "-1"), ("cpu#2", (1,), 1, "-1")]
    four = cpu_slots(2, cpus=[4, 5, 6, 7])
    assert [d.cpus for d in four] == [(4, 5), (6, 7)] and [d.threads for d in four] == [2, 2]
    uneven = cpu_slots(3, cpus=range(8))
    assert [d.cpus for d in uneven] == [(0, 1), (2, 3, 4), (5, 6, 7)]
    shared = cpu_slots(3, cpus=[0, 1])  # more children than cores: one core each, shared
    assert [d.cpus for d in shared] == [(0,), (1,), (0,)]
    assert [d.threads for d in cpu_slots(2, cpus=[0, 1, 2, 3], threads=1)] == [1, 1]
    with pytest.raises(ValueError, match="at least 1"):
        cpu_slots(0)


def test_supervisor_passes_each_cpu_childs_threads() -> None:
    sup = Supervisor(cpu_slots(2, cpus=[0, 1]), ["--once"], command=["w"])
    assert [sup._argv(c) for c in sup.children] == [
        ["w", "--device", "cpu#1", "--threads", "1", "--once"],
        ["w", "--device", "cpu#2", "--threads", "1", "--once"],
    ]


# --- the child's side: a fake tf.config ----------------------------------------------------
class _FakeConfig:
    class LogicalDeviceConfiguration:
        def __init__(self, memory_limit: int) -> None:
            self.memory_limit = memory_limit

    def __init__(self, caps: list[tuple[int, int] | None]) -> None:
        self.gpus = [type("Dev", (), {"name": f"/physical_device:GPU:{i}"})() for i in
                     range(len(caps))]
        self.caps = caps
        self.growth: list[str] = []
        self.limits: dict[str, list[int]] = {}
        cfg = self

        class Experimental:
            @staticmethod
            def set_memory_growth(dev: Any, on: bool) -> None:
                cfg.growth.append(dev.name)

            @staticmethod
            def get_device_details(dev: Any) -> dict[str, Any]:
                cc = cfg.caps[cfg.gpus.index(dev)]
                return {} if cc is None else {"compute_capability": cc}

        self.experimental = Experimental()

    def list_physical_devices(self, kind: str) -> list[Any]:
        return list(self.gpus) if kind == "GPU" else []

    def set_logical_device_configuration(self, dev: Any, confs: list[Any]) -> None:
        self.limits[dev.name] = [c.memory_limit for c in confs]


def test_child_caps_its_gpu_memory_or_grows() -> None:
    from workers.runtime import configure_gpu, gpu_capabilities

    fake = _FakeConfig([(8, 0), (6, 1)])
    names = configure_gpu(memory_limit_mib=20000, config=fake)
    assert names == ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert fake.limits == {n: [20000] for n in names} and fake.growth == []
    grow = _FakeConfig([(8, 0)])
    configure_gpu(config=grow)
    assert grow.growth == ["/physical_device:GPU:0"] and grow.limits == {}
    assert gpu_capabilities(_FakeConfig([(8, 0), None])) == [(8, 0), (0, 0)]


# --- the command line (no processes) --------------------------------------------------------
def test_cli_cpu_trials_per_device_supervises_pinned_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[list[Device], list[str]]] = []
    monkeypatch.setattr(daemon, "_supervise", lambda d, a, _u: seen.append((d, a)) or 0)
    monkeypatch.setattr(daemon, "_run_worker", lambda *_a, **_k: pytest.fail("in-process"))
    monkeypatch.setattr("workers.packing._available_cpus", lambda: [0, 1])
    result = CliRunner().invoke(daemon.app, ["--devices", "cpu", "--trials-per-device", "2",
                                             "--once"])
    assert result.exit_code == 0, result.output
    (devices, args), = seen
    assert [(d.label, d.cpus, d.threads) for d in devices] == [("cpu#1", (0,), 1),
                                                              ("cpu#2", (1,), 1)]
    assert args == ["--once"]


@pytest.mark.parametrize(("opt", "value"), [("--trials-per-device", "0"),
                                             ("--mixed-precision", "maybe"),
                                             ("--steps-per-execution", "0")])
def test_cli_bad_values_name_the_option(opt: str, value: str) -> None:
    result = CliRunner().invoke(daemon.app, ["--devices", "cpu", opt, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{opt}'" in result.output


# --- real processes -------------------------------------------------------------------------
def _fake_smi(tmp: Path) -> str:
    smi = tmp / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\ncat <<'EOF'\n" + SMI_MEMORY + "EOF\n")
    smi.chmod(0o755)
    return f"{smi.parent}:{os.environ['PATH']}"


@pytest.mark.slow
def test_k_children_per_fake_gpu_registered_with_labels_and_caps(
    db: tuple[str, Services], tmp_path: Path  # noqa: F811
) -> None:
    url, services = db
    parent = _start_parent(url, tmp_path, "--devices", "0", "--trials-per-device", "3",
                           PATH=_fake_smi(tmp_path))
    try:
        recs = wait_until(lambda: (r := _by_device(tmp_path)) and len(r) == 3 and r, 60,
                          "three children")
        assert sorted(recs) == ["gpu:0#1", "gpu:0#2", "gpu:0#3"]
        cap = str((81559 - 3 * GPU_RESERVE_MIB) // 3)
        for (rec,) in recs.values():
            assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "0"
            assert rec["env"][GPU_MEMORY_LIMIT_ENV] == cap
            assert rec["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] is None
        assert sorted(w["device"] for w in services.workers()) == sorted(recs)  # GET /workers
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
    finally:
        stop_processes([parent])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux CPU affinity")
def test_cpu_children_are_pinned_to_their_share(
    db: tuple[str, Services], tmp_path: Path  # noqa: F811
) -> None:
    url, services = db
    cores = sorted(os.sched_getaffinity(0))
    k = 2
    parent = _start_parent(url, tmp_path, "--devices", "cpu", "--trials-per-device", str(k))
    try:
        recs = wait_until(lambda: (r := _by_device(tmp_path)) and len(r) == k and r, 60,
                          "two CPU children")
        expected = {d.label: d for d in cpu_slots(k, cpus=cores)}
        assert sorted(recs) == sorted(expected)
        for label, (rec,) in recs.items():
            assert rec["affinity"] == list(expected[label].cpus)
            assert rec["argv"][:4] == ["--device", label, "--threads",
                                       str(expected[label].threads)]
            assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "-1"
        assert sorted(w["device"] for w in services.workers()) == ["cpu#1", "cpu#2"]
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
    finally:
        stop_processes([parent])


# --- the child worker's start-up (daemon._run_worker) with a fake GPU -----------------------
class _Started:
    """Stands in for the Worker and the Services: records the options it was given."""

    seen: list[Any] = []

    def __init__(self, _services: Any, options: Any = None) -> None:
        if options is not None:
            _Started.seen.append(options)

    def install_signal_handlers(self) -> None:
        pass

    def run(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "caps", "gpus", "mixed"),
    [
        ("auto", [(8, 0)], ["/gpu:0"], True),
        ("auto", [(6, 1)], ["/gpu:0"], False),
        ("auto", [], [], False),
        ("on", [(6, 1)], ["/gpu:0"], True),
        ("off", [(9, 0)], ["/gpu:0"], False),
    ],
)
def test_child_decides_mixed_precision_and_gpu_memory(
    monkeypatch: pytest.MonkeyPatch, mode: str, caps: list[tuple[int, int]],
    gpus: list[str], mixed: bool,
) -> None:
    import workers.runtime as rt

    configured: list[int | None] = []

    def fake_configure_gpu(memory_growth: bool = True, memory_limit_mib: int | None = None,
                           config: Any = None) -> list[str]:
        configured.append(memory_limit_mib)
        return gpus

    monkeypatch.setattr(rt, "configure_gpu", fake_configure_gpu)
    monkeypatch.setattr(rt, "gpu_capabilities", lambda config=None: caps)
    monkeypatch.setattr(rt, "configure_threads", lambda n: None)
    monkeypatch.setattr("workers.worker.Worker", _Started)
    monkeypatch.setattr("tuner_service.service.Services", _Started)
    monkeypatch.setattr("tuner_service.migrate.schema_problem", lambda url, wait: None)
    monkeypatch.setenv(GPU_MEMORY_LIMIT_ENV, "20000")
    _Started.seen = []
    code = daemon._run_worker(
        SimpleNamespace(database_url="sqlite://"),  # type: ignore[arg-type]
        device="gpu:0#1", once=True, max_trials=None, exit_when_idle=None, threads=None,
        mixed_precision=mode, steps_per_execution=None,
    )
    assert code == 0
    (options,) = _Started.seen
    assert options.mixed_precision is mixed
    assert options.execution.device_pipeline is bool(gpus)  # tf.data input on a GPU
    assert configured == [20000]  # the cap the supervisor handed down
