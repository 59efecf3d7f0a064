"""Property-based contract test: schemathesis generates requests from the app's own OpenAPI
schema (a bounded number per operation), in process, against ``create_app`` on a temporary
SQLite database. No request may cause a server error, and every response must match the
schema (documented status code, valid body, content type).

The operations are driven with Hypothesis directly (``operation.as_strategy()``), since
schemathesis' pytest integration does not support pytest 9.2 yet.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from processes import BIN, api_server
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support import make_settings, tiny_spec

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade

MAX_EXAMPLES = 30
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

OPERATIONS = [
    "POST /studies",
    "GET /studies",
    "GET /studies/{study_id}",
    "GET /studies/{study_id}/trials",
    "POST /studies/{study_id}/trials",
    "GET /studies/{study_id}/best",
    "GET /studies/{study_id}/best/model",
    "GET /studies/{study_id}/grid",
    "GET /studies/{study_id}/report",
    "GET /studies/{study_id}/ensemble",
    "POST /studies/{study_id}/ensemble",
    "GET /studies/{study_id}/ensemble/model",
    "POST /studies/{study_id}/pause",
    "POST /studies/{study_id}/resume",
    "POST /studies/{study_id}/cancel",
    "GET /workers",
    "GET /healthz",
    "GET /metrics",
]


# Semantic rules that JSON Schema cannot express (a file dataset needs a path; warm-start params
# must fit that study's search space): a schema-valid body may rightly get 422 there.
SEMANTIC_422 = {"POST /studies", "POST /studies/{study_id}/trials"}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{tmp / 'tuner.db'}"
    upgrade(url)
    # With a token and protected reads, every operation's declared bearer security is real
    # (schemathesis also checks that a wrong or missing token is refused).
    settings = make_settings(url, data_root=tmp / "data", api_token=TOKEN, protect_reads=True)
    app = create_app(settings, run_reaper=False)
    services = app.state.services
    services.create_study(tiny_spec("existing"))  # id 1: so that some requests find a study
    services.repo.register_worker(worker_id="w1", host="h", pid=1, device="cpu", info={})
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    services.close()


def test_every_operation_is_covered(api_schema: Any) -> None:
    labels = {r.ok().label for r in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms_to_the_schema(api_schema: Any, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    excluded = [positive_data_acceptance] if label in SEMANTIC_422 else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=AUTH, excluded_checks=excluded)

    check()


# --- the whole contract, as an operator would check it ----------------------------------------
REPO = Path(__file__).resolve().parents[2]
ST_TOKEN = "st-cli-token"


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"TUNER_API_TOKEN": ST_TOKEN}, id="token"),
        pytest.param({"TUNER_API_TOKEN": ST_TOKEN, "TUNER_PROTECT_READS": "true"},
                     id="token-protected-reads"),
    ],
)
def test_st_run_all_checks_and_stateful_phase_pass(extra: dict[str, str], tmp_path: Path) -> None:
    """``st run <server>/openapi.json --checks all`` with every phase (examples, coverage,
    fuzzing, stateful) against a real ``tuner-service serve``: 0 failures. The CLI runs from the
    repository root, so it reads schemathesis.toml (the rules JSON Schema cannot state)."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    (tmp_path / "data").mkdir()
    with api_server(url, tmp_path, TUNER_DATA_ROOT=str(tmp_path / "data"), **extra) as server:
        args = [str(BIN / "st"), "run", f"{server.base}/openapi.json", "--checks", "all",
                "--max-examples", "25", "--workers", "1", "--seed", "1"]
        if "TUNER_API_TOKEN" in extra:
            args += ["-H", f"Authorization: Bearer {ST_TOKEN}"]
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=540,
                              env={**os.environ, "NO_COLOR": "1"})
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
