"""The Kubernetes base (deploy/kubernetes/base), rendered offline and validated against the
Kubernetes API schemas (kubernetes-validate, strict) and, for KEDA's objects, against a schema
of their CRD fields; its commands parse; the migration runs before anything else; and KEDA's
PostgreSQL query is the metric's own, which gives the metric's number on a real database."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import psycopg
import pytest
import sqlalchemy as sa
from deploy_support import K8S_BASE, ROOT, check_command, pod_containers, render_kustomize
from support import make_settings, tiny_spec
from typer.testing import CliRunner

from tuner_service.cli import app as cli_app
from tuner_service.migrate import upgrade
from tuner_service.queue import claim
from tuner_service.scaling_queries import TRIALS_RUNNING, TRIALS_WAITING_TO_BE_CLAIMED
from tuner_service.service import Services
from tuner_service.settings import Settings

KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
KEDA_SCHEMA = json.loads((Path(__file__).parent / "keda_schema.json").read_text())
#: The postgresql scaler's metadata and authentication parameters (KEDA docs).
POSTGRES_TRIGGER_KEYS = {"query", "targetQueryValue", "activationTargetQueryValue", "host",
                         "port", "userName", "dbName", "sslmode", "connectionFromEnv",
                         "passwordFromEnv"}
SETTINGS_VARS = {f"TUNER_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render_kustomize(K8S_BASE, {"secrets.env": K8S_BASE / "secrets.env.example"})


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_the_base_holds_every_part(docs: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("Deployment", "tuner-api"), ("Deployment", "tuner-dashboard"),
        ("Deployment", "tuner-worker"), ("Job", "tuner-migrate"), ("ScaledObject", "tuner-worker"),
        ("Secret", "tuner-secrets"), ("Service", "tuner-api"), ("Service", "tuner-dashboard"),
        ("TriggerAuthentication", "tuner-postgres"),
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_objects_match_the_api_schemas(
    docs: list[dict[str, Any]], version: str
) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, version, strict=True)  # raises with the field


def test_keda_objects_match_their_crd_fields(docs: list[dict[str, Any]]) -> None:
    keda = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    assert len(keda) == 2
    for doc in keda:
        jsonschema.validate(doc, KEDA_SCHEMA)
    # the HPA behaviour KEDA passes on is a Kubernetes HorizontalPodAutoscalerBehavior
    so = one(docs, "ScaledObject", "tuner-worker")
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "check"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1,
                 "behavior": behavior},
    }
    kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_keda_schema_refuses_a_misspelt_field(docs: list[dict[str, Any]]) -> None:
    so = json.loads(json.dumps(one(docs, "ScaledObject", "tuner-worker")))
    so["spec"]["minReplicas"] = 0  # an HPA field, not KEDA's minReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, KEDA_SCHEMA)


def test_workers_scale_from_zero_on_the_metrics_query(docs: list[dict[str, Any]]) -> None:
    so = one(docs, "ScaledObject", "tuner-worker")["spec"]
    assert so["scaleTargetRef"]["name"] == "tuner-worker"
    one(docs, "Deployment", "tuner-worker")
    assert so["minReplicaCount"] == 0 and so["maxReplicaCount"] >= 1
    triggers = {t["name"]: t for t in so["triggers"]}
    assert set(triggers) == {"trials-waiting", "trials-running"}
    assert triggers["trials-waiting"]["metadata"]["query"] == TRIALS_WAITING_TO_BE_CLAIMED
    assert triggers["trials-running"]["metadata"]["query"] == TRIALS_RUNNING
    secret = one(docs, "Secret", "tuner-secrets")
    for t in triggers.values():
        assert t["type"] == "postgresql"
        assert set(t["metadata"]) <= POSTGRES_TRIGGER_KEYS
        assert float(t["metadata"]["targetQueryValue"]) == 1  # one pod, one GPU, one trial
        assert float(t["metadata"]["activationTargetQueryValue"]) == 0
        auth = one(docs, "TriggerAuthentication", t["authenticationRef"]["name"])
        refs = auth["spec"]["secretTargetRef"]
        assert [r["parameter"] for r in refs] == ["connection"]
        assert refs[0]["name"] == "tuner-secrets" and refs[0]["key"] in secret["data"]
        url = base64.b64decode(secret["data"][refs[0]["key"]]).decode()
        assert url.startswith("postgresql://")  # what KEDA's driver and the service both read


def test_the_worker_asks_for_one_gpu_and_runs_one_worker_on_it(
    docs: list[dict[str, Any]],
) -> None:
    worker = one(docs, "Deployment", "tuner-worker")
    c = container(worker, "worker")
    assert c["command"] == ["tuner-worker", "--devices", "all"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["image"].endswith(":gpu")
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= 300  # time to end the epoch
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])


def test_probes_resources_secrets_and_services(docs: list[dict[str, Any]]) -> None:
    api = container(one(docs, "Deployment", "tuner-api"), "api")
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] == "/healthz"
        assert api[probe]["httpGet"]["port"] == api["ports"][0]["name"]
    assert "--no-migrate" in api["command"]
    secret = one(docs, "Secret", "tuner-secrets")
    env = {e["name"]: e for e in api["env"]}
    assert env["TUNER_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] in secret["data"]
    for doc in docs:
        for c in pod_containers(doc):
            where = (doc["metadata"]["name"], c["name"])
            assert c["resources"]["requests"], where
            for e in c.get("env", []):
                assert e["name"] in SETTINGS_VARS, where
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "tuner-secrets" and ref["key"] in secret["data"], where
            assert c["image"].startswith("registry.example.com/keras-cnn-tuner:"), where
    for name in ("tuner-api", "tuner-dashboard"):
        svc = one(docs, "Service", name)
        pod_labels = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_every_command_parses(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        for c in pod_containers(doc):
            check_command(c["command"])
    assert [c["command"] for c in pod_containers(one(docs, "Job", "tuner-migrate"))] == [
        ["tuner-service", "migrate"]
    ]


@pytest.mark.parametrize("argv", [
    ["tuner-worker", "--device-all"],
    ["tuner-worker", "--devices"],
    ["tuner-service", "migrate", "--wait", "soon"],
    ["tuner-service", "mgirate"],
    ["tuner", "serve"],
])
def test_a_wrong_command_is_caught(argv: list[str]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - click's usage errors or AssertionError
        check_command(argv)


def test_pods_start_only_once_the_migration_job_has_run(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Each Deployment's init container is `tuner-service migrate --check --wait N`: it fails
    on a database the job has not migrated yet and passes once the job's command ran."""
    url = f"sqlite:///{tmp_path / 'k8s.db'}"
    runner = CliRunner()
    env = {"TUNER_DATABASE_URL": url}
    for name in ("tuner-api", "tuner-worker", "tuner-dashboard"):
        inits = one(docs, "Deployment", name)["spec"]["template"]["spec"]["initContainers"]
        assert [i["command"][:4] for i in inits] == [
            ["tuner-service", "migrate", "--check", "--wait"]
        ], name
        assert float(inits[0]["command"][4]) >= 60, name
    check = [*inits[0]["command"][1:4], "0"]  # no waiting in the test
    assert runner.invoke(cli_app, check, env=env).exit_code != 0
    job = one(docs, "Job", "tuner-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert runner.invoke(cli_app, job["command"][1:], env=env).exit_code == 0
    result = runner.invoke(cli_app, check, env=env)
    assert result.exit_code == 0, result.output


@pytest.mark.postgres
def test_keda_queries_give_the_metric_and_the_running_trials_on_postgres(
    docs: list[dict[str, Any]], pg_url: str
) -> None:
    upgrade(pg_url)
    services = Services(make_settings(pg_url))
    try:
        a = services.create_study(tiny_spec("k8s-a", budget={"n_trials": 4, "max_epochs": 1,
                                                             "max_parallel": 2}))
        services.create_study(tiny_spec("k8s-b", budget={"n_trials": 3, "max_epochs": 1}))
        paused = services.create_study(tiny_spec("k8s-c"))
        services.pause(paused.id)
        for wid in ("w1", "w2"):
            services.repo.register_worker(worker_id=wid, host="h", pid=1, device="gpu:0",
                                          info={})
            assert claim(services.repo, wid) is not None
        snapshot = services.repo.metrics_snapshot()
        with services.engine.connect() as conn:
            active = conn.execute(sa.text(
                "SELECT COUNT(*) FROM tuner_leases WHERE state = 'active'")).scalar_one()
    finally:
        services.close()
    assert a.id and active == 2
    assert snapshot.claimable_budget == 4 + 3 - 2  # the paused study hands out none
    triggers = {t["name"]: t["metadata"]["query"]
                for t in one(docs, "ScaledObject", "tuner-worker")["spec"]["triggers"]}
    # run them as KEDA does: the manifest's text, over a plain libpq connection
    dsn = sa.engine.make_url(pg_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(dsn) as conn:
        waiting = conn.execute(triggers["trials-waiting"]).fetchone()
        running = conn.execute(triggers["trials-running"]).fetchone()
    assert waiting is not None and float(waiting[0]) == snapshot.claimable_budget
    assert running is not None and float(running[0]) == active


def test_the_docs_say_how_to_install_and_scale() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for needle in ("kubectl -n tuner apply -k deploy/kubernetes/base", "secrets.env.example",
                   "maxReplicaCount", "tuner_trials_waiting_to_be_claimed",
                   "kubectl -n tuner delete job tuner-migrate"):
        assert needle in doc, needle
    assert "kubectl apply -k deploy/kubernetes/base" in readme
