"""deploy/slurm/tuner-workers.sbatch: valid bash, the directives a GPU worker array needs, and
run as Slurm would run one array task (a stand-in ``srun`` on the PATH that starts the step's
command) it trains a queued study with the service's worker and exits when idle."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import ROOT, check_command
from support import make_settings, tiny_spec

from tuner_service.migrate import upgrade
from tuner_service.service import Services

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "deploy" / "slurm" / "tuner-workers.sbatch"

#: Stands in for Slurm's srun: records its arguments, drops its own options, runs the step.
FAKE_SRUN = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SRUN_RECORD"
while [[ "$1" == --* ]]; do shift; done
exec "$@"
"""


def directives() -> dict[str, str]:
    out = {}
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").partition("=")
            out[key] = value
    return out


def test_the_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_directives_ask_for_an_array_of_one_gpu_tasks() -> None:
    d = directives()
    assert d["--gpus-per-task"] == "1"
    assert d["--ntasks"] == "1"
    assert d["--array"]
    assert d["--signal"].startswith("TERM@")  # workers hand their trial back before the limit
    assert "%a" in d["--output"]  # one log per array task


def test_an_array_task_trains_the_queue_then_exits_when_idle(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    upgrade(url)
    services = Services(make_settings(url))
    row = services.create_study(tiny_spec("slurm", budget={"n_trials": 1, "max_epochs": 1}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    env_file = tmp_path / "tuner.env"
    env_file.write_text(f"TUNER_DATABASE_URL={url}\nTUNER_POLL_INTERVAL=0.2\n")
    env = {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TUNER_ENV_FILE": str(env_file),
        "TUNER_EXIT_WHEN_IDLE": "1",
        "SRUN_RECORD": str(tmp_path / "srun.args"),
        # what Slurm sets in an array task (no GPU here: the worker runs on the CPU)
        "SLURM_JOB_ID": "42", "SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_CPUS_PER_TASK": "2", "CUDA_VISIBLE_DEVICES": "",
    }
    try:
        done = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, timeout=300,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "task 0" in done.stdout
        argv = (tmp_path / "srun.args").read_text().splitlines()
        assert "--gpus-per-task=1" in argv and "--ntasks=1" in argv
        step = argv[argv.index("tuner-worker"):]
        assert step == ["tuner-worker", "--devices", "all", "--exit-when-idle", "1"]
        check_command(step)
        study = services.study_detail(row.id)
        assert study["status"] == "completed", study
        assert study["trial_counts"]["complete"] == 1
    finally:
        services.close()


def test_without_a_database_url_it_says_so(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "TUNER_DATABASE_URL" in done.stderr, shlex.quote(done.stderr)



def test_the_docs_say_how_to_submit() -> None:
    for doc in (ROOT / "docs" / "deploy.md", ROOT / "README.md"):
        assert "sbatch --array=0-7 deploy/slurm/tuner-workers.sbatch" in doc.read_text(), doc
