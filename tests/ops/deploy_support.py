"""Helpers of the deployment tests: render the Kubernetes kustomize base offline (the subset of
kustomize it uses: resources, a secretGenerator from env files without hash suffix, images),
and check that a command line parses as one of the service's CLIs would parse it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_BASE = ROOT / "deploy" / "kubernetes" / "base"

#: What the renderer below implements; a kustomization using more fails the tests.
KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "secretGenerator", "generatorOptions",
                  "images"}


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def _split_image(image: str) -> tuple[str, str | None]:
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, None


def pod_containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container (init containers too) of a Deployment's or a Job's pod template."""
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def render_kustomize(folder: Path, env_files: dict[str, Path] | None = None) -> list[dict]:
    """The manifests ``kubectl kustomize folder`` prints. ``env_files`` stands in for env
    files of the secretGenerator (e.g. ``secrets.env`` -> its ``.example``)."""
    env_files = env_files or {}
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(k) - KUSTOMIZE_KEYS
    assert not unknown, f"kustomization uses {unknown}: teach render_kustomize first"
    docs: list[dict] = []
    for name in k["resources"]:
        docs += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    assert k.get("generatorOptions", {}) == {"disableNameSuffixHash": True}
    for gen in k.get("secretGenerator", []):
        assert set(gen) <= {"name", "envs"}, gen
        data: dict[str, str] = {}
        for env in gen["envs"]:
            data.update(_env_file(env_files.get(env, folder / env)))
        docs.append({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": gen["name"]},
            "data": {key: base64.b64encode(v.encode()).decode() for key, v in data.items()},
        })
    images = {i["name"]: i for i in k.get("images", [])}
    for doc in docs:
        for c in pod_containers(doc):
            name, tag = _split_image(c["image"])
            if name in images:
                new = images[name]
                c["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
    return docs


def check_command(argv: list[str]) -> None:
    """Parse ``argv`` the way ``tuner-service`` or ``tuner-worker`` would (nothing runs);
    raises (click's usage error, or AssertionError) on an unknown command or option, or a
    bad value."""
    from tuner_service.cli import app as service_app
    from workers.daemon import app as worker_app

    program, *args = argv
    if program == "tuner-service":
        commands = typer.main.get_command(service_app).commands  # type: ignore[attr-defined]
        assert args and args[0] in commands, f"no command {argv}"
        commands[args[0]].make_context(args[0], list(args[1:]))
    elif program == "tuner-worker":
        typer.main.get_command(worker_app).make_context(program, list(args))
    else:
        raise AssertionError(f"not a command of the service: {argv}")
