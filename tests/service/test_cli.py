"""``tuner-service`` commands against a SQLite database (no API server, no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support import tiny_spec
from typer.testing import CliRunner

from tuner_service.cli import app

runner = CliRunner()


def _invoke(url: str, *args: str) -> tuple[int, str]:
    """Exit code and what the command printed (stdout, then stderr)."""
    result = runner.invoke(app, [*args], env={"TUNER_DATABASE_URL": url})
    return result.exit_code, result.stdout + result.stderr


def test_migrate_submit_studies_show_cancel(sqlite_url: str, tmp_path: Path) -> None:
    code, out = _invoke(sqlite_url, "migrate")
    from tuner_service.migrate import head_revision

    assert code == 0 and f"revision {head_revision()}" in out
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_spec("cli-json")))
    result = runner.invoke(app, ["submit", str(spec_file)], env={"TUNER_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0 and result.stdout.strip() == "1"
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(yaml.safe_dump(tiny_spec("cli-yaml")))
    result = runner.invoke(app, ["submit", str(yaml_file)], env={"TUNER_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0 and result.stdout.strip() == "2"
    code, out = _invoke(sqlite_url, "studies")
    assert code == 0 and "cli-json" in out and "cli-yaml" in out
    code, out = _invoke(sqlite_url, "show", "1")
    assert code == 0 and json.loads(out)["name"] == "cli-json"
    code, out = _invoke(sqlite_url, "cancel", "2")
    assert code == 0 and "cancelled" in out
    code, out = _invoke(sqlite_url, "watch", "2", "--interval", "0.1")
    assert code == 0 and "cancelled" in out


def test_submit_reports_every_problem(sqlite_url: str, tmp_path: Path) -> None:
    _invoke(sqlite_url, "migrate")
    bad = tiny_spec("bad", search_space={"learning_rat": {"type": "float", "low": 1, "high": 0}})
    spec_file = tmp_path / "bad.json"
    spec_file.write_text(json.dumps(bad))
    code, out = _invoke(sqlite_url, "submit", str(spec_file))
    assert code == 2
    assert "search_space.learning_rat" in out and "learning_rate" in out
    code, out = _invoke(sqlite_url, "submit", str(spec_file), "--name", "x")
    assert code == 2


def test_unknown_study_is_a_clear_error(sqlite_url: str) -> None:
    _invoke(sqlite_url, "migrate")
    code, out = _invoke(sqlite_url, "show", "42")
    assert code == 2 and "study 42 not found" in out


def test_serve_freezes_the_startup_heap_before_serving(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API process moves its start-up objects out of the collector's reach before it
    serves, so full collections of the loaded libraries do not land inside requests."""
    import gc

    import uvicorn

    seen: dict[str, int] = {}

    def fake_run(api: object, **kwargs: object) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["port"] = int(kwargs["port"])  # type: ignore[call-overload]

    monkeypatch.setattr(uvicorn, "run", fake_run)
    gc.unfreeze()
    try:
        code, out = _invoke(sqlite_url, "serve", "--port", "8765")
    finally:
        gc.unfreeze()  # the test process keeps collecting as usual
    assert code == 0, out
    assert seen["port"] == 8765
    assert seen["frozen"] > 1000
