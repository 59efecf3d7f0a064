"""``tuner-worker --devices``: parsing, GPU detection and backoff (pure), the command line's
dispatch (in-process), and the supervising parent with real child processes on the CPU with
made-up GPU ids: each child pinned with CUDA_VISIBLE_DEVICES and registered with its device,
a SIGKILLed child restarted, SIGTERM stopping everything with exit 0.

The process tests start stand-in children (``supervised_child.py``: no TensorFlow) through
``TUNER_WORKER_CHILD_COMMAND``, and once the real daemon with a stand-in trainer
(``tests/reliability/fake_worker.py``) on a small study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from processes import BIN, FAST, env, stop_processes, wait_until
from support import make_settings, tiny_spec
from typer.testing import CliRunner

from tuner_service.migrate import upgrade
from tuner_service.service import Services
from workers import daemon
from workers.supervisor import (
    CHILD_COMMAND_ENV,
    Device,
    DeviceSpecError,
    Supervisor,
    child_command,
    child_env,
    detect_gpus,
    parse_devices,
    resolve_devices,
    restart_delay,
)

HERE = Path(__file__).parent
CHILD = HERE / "supervised_child.py"
FAKE_WORKER = HERE.parent / "reliability" / "fake_worker.py"

SMI_OUTPUT = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-66666666-7777-8888-9999-000000000000)
"""

SMI_MIG_OUTPUT = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
  MIG 3g.20gb     Device  0: (UUID: MIG-bbbbbbbb-0000-0000-0000-000000000000)
  MIG 3g.20gb     Device  1: (UUID: MIG-cccccccc-0000-0000-0000-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-dddddddd-0000-0000-0000-000000000000)
"""


# --- pure parts ---------------------------------------------------------------------------
def labels(devices: list[Device] | None) -> list[str] | None:
    return None if devices is None else [d.label for d in devices]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0,1", ["gpu:0", "gpu:1"]),
        (" 3 , 1 ", ["gpu:3", "gpu:1"]),
        ("0,1,2,3", ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]),
        ("GPU-abc-123", ["gpu:GPU-abc-123"]),
        ("cpu", []),
        ("CPU", []),
        ("all", None),
        ("All", None),
    ],
)
def test_parse_devices(spec: str, expected: list[str] | None) -> None:
    assert labels(parse_devices(spec)) == expected


def test_parse_devices_pins_each_id() -> None:
    assert parse_devices("2,0") == [Device("2", "gpu:2"), Device("0", "gpu:0")]


@pytest.mark.parametrize("spec", ["", " ", "gpu0", "0,,1", "-1", "0;1", "cpu,0", "1.5", "all,0"])
def test_parse_devices_rejects_bad_values(spec: str) -> None:
    with pytest.raises(DeviceSpecError, match="expected 'all', 'cpu' or comma-separated"):
        parse_devices(spec)


def test_parse_devices_rejects_duplicates() -> None:
    with pytest.raises(DeviceSpecError, match="GPU 1 listed more than once"):
        parse_devices("0,1,1")


def _no_smi(_name: str) -> str | None:
    return None


def _fake_run(stdout: str, code: int = 0) -> Any:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:] == ["-L"]
        return subprocess.CompletedProcess(argv, code, stdout=stdout, stderr="boom")

    return run


def test_detect_gpus_from_nvidia_smi() -> None:
    found = detect_gpus({}, which=lambda _: "/usr/bin/nvidia-smi", run=_fake_run(SMI_OUTPUT))
    assert found == [Device("0", "gpu:0"), Device("1", "gpu:1")]


def test_detect_gpus_mig_instances_get_one_child_each() -> None:
    found = detect_gpus({}, which=lambda _: "nvidia-smi", run=_fake_run(SMI_MIG_OUTPUT))
    assert labels(found) == ["gpu:0/mig:0", "gpu:0/mig:1", "gpu:1"]
    assert found[0].visible == "MIG-bbbbbbbb-0000-0000-0000-000000000000"
    assert found[2].visible == "1"


def test_detect_gpus_nvidia_smi_failing_means_no_gpu() -> None:
    assert detect_gpus({}, which=lambda _: "nvidia-smi", run=_fake_run("", code=9)) == []

    def broken(*_: Any, **__: Any) -> Any:
        raise OSError("exec format error")

    assert detect_gpus({}, which=lambda _: "nvidia-smi", run=broken) == []


def test_detect_gpus_from_cuda_visible_devices() -> None:
    assert labels(detect_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, which=_no_smi)) == [
        "gpu:2", "gpu:3"]
    for hidden in ("", "-1", "-1,0"):  # CUDA stops at the first invalid id
        assert detect_gpus({"CUDA_VISIBLE_DEVICES": hidden}, which=_no_smi) == []
    assert labels(detect_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"}, which=_no_smi)) == ["gpu:1"]


def test_inherited_cuda_visible_devices_restricts_nvidia_smi() -> None:
    """A scheduler's (or user's) CUDA_VISIBLE_DEVICES wins over what nvidia-smi lists."""
    found = detect_gpus({"CUDA_VISIBLE_DEVICES": "1"}, which=lambda _: "nvidia-smi",
                        run=_fake_run(SMI_OUTPUT))
    assert labels(found) == ["gpu:1"]


def test_detect_gpus_none_found() -> None:
    assert detect_gpus({}, which=_no_smi) == []


def test_detect_gpus_with_a_fake_nvidia_smi_on_the_path(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{SMI_OUTPUT}EOF\n")
    smi.chmod(0o755)
    environ = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    found = resolve_devices(
        "all", environ, which=lambda name: __import__("shutil").which(name, path=environ["PATH"])
    )
    assert labels(found) == ["gpu:0", "gpu:1"]


def test_resolve_devices_default_is_all_then_cpu() -> None:
    assert resolve_devices(None, {"CUDA_VISIBLE_DEVICES": "0"}, which=_no_smi) == [
        Device("0", "gpu:0")]
    assert resolve_devices(None, {}, which=_no_smi) == []
    assert resolve_devices("all", {}, which=_no_smi) == []
    # explicit lists are not checked against the hardware (and never run nvidia-smi)
    assert labels(resolve_devices("5", {}, which=_no_smi)) == ["gpu:5"]
    assert resolve_devices("cpu", {"CUDA_VISIBLE_DEVICES": "0"}, which=_no_smi) == []


def test_restart_delay_is_exponential_and_capped() -> None:
    assert [restart_delay(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(10_000) == 30
    assert restart_delay(3, base=0.5, cap=60) == 2


def test_child_env_pins_one_device() -> None:
    parent = {"CUDA_VISIBLE_DEVICES": "-1", "TUNER_DATABASE_URL": "sqlite://", "X": "1"}
    e = child_env(Device("3", "gpu:3"), parent)
    assert e["CUDA_VISIBLE_DEVICES"] == "3"
    assert e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert e["X"] == "1" and e["TUNER_DATABASE_URL"] == "sqlite://"
    assert parent["CUDA_VISIBLE_DEVICES"] == "-1"  # not changed in place
    assert child_env(Device("0", "gpu:0"), {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})[
        "CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"


def test_child_command_default_and_override() -> None:
    assert child_command() == [sys.executable, "-m", "workers.daemon"]
    assert child_command("python 'my worker.py' -u") == ["python", "my worker.py", "-u"]


def test_supervisor_needs_a_device() -> None:
    with pytest.raises(ValueError, match="at least one device"):
        Supervisor([])


def test_parent_modules_do_not_import_tensorflow() -> None:
    code = ("import sys, workers.daemon, workers.supervisor; "
            "sys.exit(int('tensorflow' in sys.modules or 'keras' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the command line's dispatch (no processes) -------------------------------------------
class Dispatch:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.supervised: list[tuple[list[Device], list[str], str | None]] = []
        self.in_process: list[dict[str, Any]] = []
        monkeypatch.setattr(daemon, "_supervise", self._supervise)
        monkeypatch.setattr(daemon, "_run_worker", self._run_worker)
        monkeypatch.setattr("workers.supervisor.shutil.which", _no_smi)
        self.cuda_seen: list[str | None] = []

    def _supervise(self, gpus: list[Device], args: list[str], url: str | None) -> int:
        self.supervised.append((gpus, args, url))
        return 0

    def _run_worker(self, _settings: Any, **kw: Any) -> int:
        self.cuda_seen.append(os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.in_process.append(kw)
        return 0


def _cli(*args: str, **env_: str | None) -> tuple[int, str]:
    result = CliRunner().invoke(daemon.app, list(args), env=env_)
    return result.exit_code, result.output


def test_cli_devices_list_supervises_with_passed_through_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = Dispatch(monkeypatch)
    code, out = _cli(
        "--devices", "0,1", "--max-trials", "5", "--exit-when-idle", "2.5", "--threads", "2",
        "--mixed-precision", "on", "--steps-per-execution", "8", "--heartbeat-interval", "3",
        "--poll-interval", "0.5", "--log-json", "--database-url", "sqlite:///x.db",
    )
    assert code == 0, out
    (gpus, args, url), = d.supervised
    assert labels(gpus) == ["gpu:0", "gpu:1"]
    assert args == ["--max-trials", "5", "--exit-when-idle", "2.5", "--threads", "2",
                    "--mixed-precision", "on", "--steps-per-execution", "8",
                    "--heartbeat-interval", "3.0", "--poll-interval", "0.5", "--log-json"]
    assert url == "sqlite:///x.db"  # handed down by environment, not on the command line
    assert not d.in_process


def test_cli_once_and_no_log_json_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Dispatch(monkeypatch)
    code, out = _cli("--devices", "1", "--once", "--no-log-json")
    assert code == 0, out
    assert d.supervised[0][1] == ["--once", "--no-log-json"]


def test_cli_cpu_runs_in_process_without_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    d = Dispatch(monkeypatch)
    code, out = _cli("--devices", "cpu", "--threads", "3", "--once")
    assert code == 0, out
    assert not d.supervised
    assert d.in_process[0]["device"] == "cpu" and d.in_process[0]["threads"] == 3
    assert d.in_process[0]["once"] is True
    assert d.cuda_seen == ["-1"]  # TensorFlow will see no GPU


def test_cli_default_is_all_gpus_else_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Dispatch(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _cli()[0] == 0
    assert labels(d.supervised[0][0]) == ["gpu:0", "gpu:1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert _cli()[0] == 0
    assert d.in_process[-1]["device"] == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _cli("--devices", "all")[0] == 0
    assert d.in_process[-1]["device"] == "cpu" and len(d.supervised) == 1


def test_cli_device_label_runs_in_process_as_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """What each child runs: one worker in-process, on the GPU its parent pinned."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    d = Dispatch(monkeypatch)
    assert _cli("--device", "gpu:3", "--max-trials", "2")[0] == 0
    assert d.in_process[0]["device"] == "gpu:3" and d.in_process[0]["max_trials"] == 2
    assert d.cuda_seen == ["3"] and not d.supervised


@pytest.mark.parametrize("value", ["x", "0,0", "gpu:0", ""])
def test_cli_bad_devices_exit_2(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    d = Dispatch(monkeypatch)
    code, out = _cli("--devices", value)
    assert code == 2
    assert "Invalid value for '--devices'" in out
    assert not d.supervised and not d.in_process


def test_cli_devices_and_device_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    Dispatch(monkeypatch)
    code, out = _cli("--devices", "0", "--device", "gpu:0")
    assert code == 2 and "either --devices or --device" in out


# --- real processes -----------------------------------------------------------------------
def _start_parent(url: str, tmp: Path, *args: str, child: Path = CHILD, **extra: str
                  ) -> subprocess.Popen[bytes]:
    out = tmp / "children"
    out.mkdir(exist_ok=True)
    log = (tmp / "parent.log").open("a")
    return subprocess.Popen(
        [str(BIN / "tuner-worker"), *args],
        env=env(url, **{CHILD_COMMAND_ENV: f"{sys.executable} {child}",
                        "SUPERVISED_CHILD_DIR": str(out), **extra}),
        stdout=log, stderr=subprocess.STDOUT,
    )


def _records(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp / "children").glob("*.json"))]


def _by_device(tmp: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in _records(tmp):
        out.setdefault(r["device"], []).append(r)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not reaped yet) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def db(sqlite_url: str) -> Any:
    upgrade(sqlite_url)
    services = Services(make_settings(sqlite_url))
    yield sqlite_url, services
    services.close()


@pytest.mark.slow
def test_one_pinned_child_per_device_restart_after_kill9_and_sigterm(
    db: tuple[str, Services], tmp_path: Path
) -> None:
    url, services = db
    parent = _start_parent(url, tmp_path, "--devices", "0,1", "--threads", "1",
                           "--heartbeat-interval", "0.5")
    try:
        first = wait_until(lambda: (r := _by_device(tmp_path)) and len(r) == 2 and r, 60,
                           "two children")
        # each child pinned to its GPU, memory growth on, registered with its label
        for gpu in ("0", "1"):
            (rec,) = first[f"gpu:{gpu}"]
            assert rec["env"]["CUDA_VISIBLE_DEVICES"] == gpu
            assert rec["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
            assert rec["env"]["TUNER_DATABASE_URL"] == url
            assert rec["argv"] == ["--device", f"gpu:{gpu}", "--threads", "1",
                                   "--heartbeat-interval", "0.5"]
        workers = services.workers()
        assert sorted((w["device"], w["pid"]) for w in workers) == sorted(
            (d, recs[0]["pid"]) for d, recs in first.items())

        # kill -9 one child: the parent starts a new one on the same GPU
        victim = first["gpu:1"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        again = wait_until(lambda: len(_by_device(tmp_path).get("gpu:1", [])) == 2
                           and _by_device(tmp_path), 30, "gpu:1 restarted")
        new = next(r for r in again["gpu:1"] if r["pid"] != victim)
        assert new["env"]["CUDA_VISIBLE_DEVICES"] == "1"
        assert len(again["gpu:0"]) == 1  # the other child was left alone
        regs = [w for w in services.workers(include_stopped=True) if w["device"] == "gpu:1"]
        assert {w["pid"] for w in regs} == {victim, new["pid"]}

        # SIGTERM: forwarded to every child, which stop cleanly; then the parent exits 0
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
    finally:
        stop_processes([parent])
    live = [again["gpu:0"][0]["pid"], new["pid"]]
    assert not [p for p in live if _alive(p)]
    stopped = {w["pid"]: w["status"] for w in services.workers(include_stopped=True)}
    assert all(stopped[p] == "stopped" for p in live)
    assert services.workers() == [w for w in services.workers() if w["pid"] == victim]
    log = (tmp_path / "parent.log").read_text()
    assert "worker gpu:1" in log and "killed by SIGKILL; restarting it in 1s" in log


@pytest.mark.slow
def test_finished_children_are_not_restarted_crashed_ones_are(
    db: tuple[str, Services], tmp_path: Path
) -> None:
    """With --max-trials a child that exits 0 has finished; one that exits 3 is restarted
    (with backoff), and the parent exits 0 once every child has finished. GPUs found through
    CUDA_VISIBLE_DEVICES (the default, ``all``)."""
    url, services = db
    parent = _start_parent(url, tmp_path, "--max-trials", "1", CUDA_VISIBLE_DEVICES="4,7",
                           SUPERVISED_CHILD_CRASH_FIRST="1")
    try:
        assert parent.wait(timeout=60) == 0
    finally:
        stop_processes([parent])
    by_device = _by_device(tmp_path)
    assert sorted(by_device) == ["gpu:4", "gpu:7"]
    for gpu, recs in by_device.items():
        assert len(recs) == 2, recs  # crashed once, restarted once, finished: not restarted
        assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in recs} == {gpu.split(":")[1]}
        assert all("--max-trials" in r["argv"] for r in recs)
    regs = sorted(w["device"] for w in services.workers(include_stopped=True))
    assert regs == ["gpu:4", "gpu:4", "gpu:7", "gpu:7"]
    log = (tmp_path / "parent.log").read_text()
    assert log.count("exited with code 3; restarting it in 1s") == 2
    assert "all workers finished" in log


@pytest.mark.slow
def test_fake_nvidia_smi_on_path_and_second_signal_kills(
    db: tuple[str, Services], tmp_path: Path
) -> None:
    """``--devices all`` with nvidia-smi on the PATH (CUDA_VISIBLE_DEVICES unset); children
    that ignore SIGTERM are SIGKILLed on the second signal."""
    url, _ = db
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{SMI_OUTPUT}EOF\n")
    smi.chmod(0o755)
    extra = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SUPERVISED_CHILD_IGNORE_TERM": "1"}
    (tmp_path / "children").mkdir()
    e = env(url, **{CHILD_COMMAND_ENV: f"{sys.executable} {CHILD}",
                    "SUPERVISED_CHILD_DIR": str(tmp_path / "children"), **extra})
    e.pop("CUDA_VISIBLE_DEVICES")  # env() hides GPUs; a bare host has no such variable
    log = (tmp_path / "parent.log").open("a")
    parent = subprocess.Popen([str(BIN / "tuner-worker"), "--devices", "all"], env=e,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        recs = wait_until(lambda: (r := _by_device(tmp_path)) and len(r) == 2 and r, 60,
                          "two children")
        assert {d: r[0]["env"]["CUDA_VISIBLE_DEVICES"] for d, r in recs.items()} == {
            "gpu:0": "0", "gpu:1": "1"}
        pids = [r[0]["pid"] for r in recs.values()]
        parent.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert parent.poll() is None and all(_alive(p) for p in pids)  # children ignore it
        parent.send_signal(signal.SIGINT)
        assert parent.wait(timeout=30) == 130
        wait_until(lambda: not any(_alive(p) for p in pids), 10, "children killed")
    finally:
        stop_processes([parent])


@pytest.mark.slow
def test_real_daemon_children_run_a_study_under_their_device_labels(
    db: tuple[str, Services], tmp_path: Path
) -> None:
    """The real worker loop (stand-in trainer) as children of ``--devices 0,1``: a study
    completes, its trials are run by workers registered as gpu:0 and gpu:1, and the children,
    started with --exit-when-idle, finish and are not restarted."""
    url, services = db
    row = services.create_study(tiny_spec(
        "pinned", budget={"n_trials": 6, "max_epochs": 2, "max_parallel": 2}))
    parent = _start_parent(url, tmp_path, "--devices", "0,1", "--exit-when-idle", "3",
                           child=FAKE_WORKER, **FAST)
    try:
        assert parent.wait(timeout=80) == 0
    finally:
        stop_processes([parent])
    assert services.study_detail(row.id)["status"] == "completed"
    workers = services.workers(include_stopped=True)
    assert sorted(w["device"] for w in workers) == ["gpu:0", "gpu:1"]
    assert {w["status"] for w in workers} == {"stopped"}
    by_id = {w["id"]: w["device"] for w in workers}
    trials, _ = services.list_trials(row.id)
    ran_on = [by_id[t["worker"]] for t in trials if t["state"] == "complete"]
    assert len(ran_on) == 6 and set(ran_on) <= {"gpu:0", "gpu:1"}
    log = (tmp_path / "parent.log").read_text()
    assert log.count("finished") >= 2 and "restarting" not in log
