"""docker-compose.yml, the Dockerfiles, the systemd units and docs/deploy.md agree with the
code: every command exists, every variable is one the settings read, dependencies point at
services that exist and have the health checks their conditions need (Docker does not run
here: the files are parsed)."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from tuner_service.cli import app as cli_app
from tuner_service.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_VARS = {f"TUNER_{name.upper()}" for name in Settings.model_fields}
OTHER_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}  # the postgres image's
# compose-file variables (interpolated, never passed to a container)
COMPOSE_ONLY_VARS = {"POSTGRES_BIND", "POSTGRES_HOST", "POSTGRES_PORT", "API_TOKEN", "LOG_LEVEL"}


def scripts() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"]) | {"optuna-dashboard"}


def cli_commands() -> set[str]:
    return set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_the_services_are_all_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "migrate", "api", "worker", "dashboard"}


def test_every_command_exists(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "command" not in svc:
            assert name == "postgres"  # the image's own entrypoint
            continue
        cmd = command_of(svc)
        assert cmd[0] in scripts(), (name, cmd)
        if cmd[0] == "tuner-service":
            assert cmd[1] in cli_commands(), (name, cmd)
    assert command_of(compose["services"]["worker"]) == ["tuner-worker", "--devices", "all"]
    assert command_of(compose["services"]["migrate"])[:2] == ["tuner-service", "migrate"]
    assert command_of(compose["services"]["dashboard"])[:2] == ["tuner-service", "dashboard"]
    # the API does not migrate by itself: the one-shot migrate service does
    assert "--no-migrate" in command_of(compose["services"]["api"])


def test_every_environment_variable_is_read_by_the_settings(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        unknown = set(env) - SETTINGS_VARS - OTHER_VARS
        assert not unknown, f"{name}: variables no setting reads: {unknown}"
    for name in ("migrate", "api", "worker", "dashboard"):
        url = compose["services"][name]["environment"]["TUNER_DATABASE_URL"]
        assert url.startswith("postgresql://") and "${POSTGRES_HOST:-postgres}" in url, name


def test_interpolated_variables_are_documented_in_the_env_example(
    compose: dict[str, Any],
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    example = (ROOT / "deploy" / "env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", example, re.M))
    assert used <= documented, used - documented
    assert documented <= OTHER_VARS | COMPOSE_ONLY_VARS
    # not TUNER_*: the settings read ./.env too, and must not pick up the compose secrets
    assert not documented & SETTINGS_VARS


def test_dependencies_exist_and_have_what_their_condition_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            cond = spec["condition"]
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            else:
                assert cond == "service_completed_successfully", (name, dep, cond)
                assert services[dep].get("restart") == "no", f"{dep} is not a one-shot job"
    for name in ("api", "worker", "dashboard"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_postgres_has_a_healthcheck_and_a_volume(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_the_worker_reserves_the_gpus_of_its_host(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d["count"] == "all" for d in devices)
    assert worker["build"]["dockerfile"] == "Dockerfile.gpu"
    for volume in worker["volumes"]:
        source = volume.split(":")[0]
        assert source.startswith("./") or source in compose["volumes"]


def test_the_dockerfiles_exist_and_install_the_right_extras(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), (name, dockerfile)
    cpu = (ROOT / "Dockerfile").read_text()
    gpu = (ROOT / "Dockerfile.gpu").read_text()
    assert "ARG EXTRAS=cpu" in cpu and 'pip install ".${EXTRAS:+[$EXTRAS]}"' in cpu
    assert 'pip install ".[gpu]"' in gpu
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("tensorflow[and-cuda]") for d in extras["gpu"])
    for text in (cpu, gpu):  # everything COPY'd exists
        for src in re.findall(r"^COPY (\S+) ", text, re.M):
            assert (ROOT / src).exists(), src


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("tuner-worker.service", ["tuner-worker", "--devices", "all"]),
        ("tuner-api.service", ["tuner-service", "serve"]),
        ("tuner-dashboard.service", ["tuner-service", "dashboard"]),
    ],
)
def test_systemd_units_run_existing_commands(unit: str, command: list[str]) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / unit)
    svc = parser["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert Path(argv[0]).name == command[0] and Path(argv[0]).name in scripts()
    assert argv[1 : len(command)] == command[1:]
    assert svc["EnvironmentFile"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if unit == "tuner-worker.service":
        assert svc["KillSignal"] == "SIGTERM"
        assert int(svc["TimeoutStopSec"]) >= 300  # time to finish the current epoch


def test_deploy_doc_covers_the_deployment() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for needle in (
        "tuner-worker --devices all", "deploy/tuner-worker.service", "docker compose up",
        "pg_dump", "tuner-service dashboard", "/metrics", "Scaling out", "Backups",
    ):
        assert needle in doc, needle
