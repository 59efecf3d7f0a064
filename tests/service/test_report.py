"""The study report (no TensorFlow): one self-contained HTML file with every section, from
``build_report``, ``GET /studies/{id}/report`` and ``tuner-service report``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support import finished_study, make_settings, tiny_spec
from typer.testing import CliRunner

from tuner_service.api.app import create_app
from tuner_service.cli import app as cli_app
from tuner_service.models import StudyRow
from tuner_service.report import SECTIONS, build_report
from tuner_service.service import Services


def _assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    # nothing is loaded from elsewhere: no script/link/img pointing at a URL
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"?(https?:)?//", page)
    assert "cdn.plot.ly" not in page.split("</script>", 1)[1]  # only inside plotly.js itself


def test_report_has_every_section_and_the_confusion_matrix(services: Services) -> None:
    sid = finished_study(services, "report-full")
    page = build_report(services, sid)
    _assert_self_contained(page)
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page
    assert page.count("Plotly.newPlot") >= 5  # history, curves, importances, parallel, matrix
    assert "report-full" in page
    assert "param learning_rate" in page
    assert 'id="per-class"' in page and "<td>0.750</td>" in page
    assert '"z":[[9,1,0],[2,6,2],[0,3,7]]' in page.replace(" ", "")
    assert "Not drawn" not in page


def _record_ensemble(services: Services, sid: int, record: dict[str, Any]) -> None:
    """The final evaluation as a worker leaves it, with its ensemble record."""
    with services.repo.session() as s:
        s.execute(
            sa.update(StudyRow).where(StudyRow.id == sid)
            .values(evaluation_state="done", evaluation={"trial_number": 5, "ensemble": record})
        )


def _ensemble_section(page: str) -> str:
    return page.split('<section id="ensemble">', 1)[1].split("</section>", 1)[0]


def test_report_shows_the_ensemble_next_to_the_best_trial(services: Services) -> None:
    sid = finished_study(services, "report-ensemble", per_class=False)
    assert "No ensemble (final evaluation: none)." in _ensemble_section(build_report(services, sid))
    _record_ensemble(services, sid, {
        "method": "greedy", "size": 3, "members": [5, 3, 4], "weights": [0.5, 0.3, 0.2],
        "best_trial_number": 5, "model_artifact_id": "a1",
        "validation": {"ensemble": {"accuracy": 0.8125, "log_loss": 0.41},
                       "best_trial": {"accuracy": 0.75, "log_loss": 0.52}},
        "test": {"ensemble": {"accuracy": 0.9, "log_loss": 0.3},
                 "best_trial": {"accuracy": 0.85, "log_loss": 0.35}},
    })
    section = _ensemble_section(build_report(services, sid))
    assert "<td>greedy</td>" in section and "<td>5, 3, 4</td>" in section
    assert "<td>0.500, 0.300, 0.200</td>" in section
    assert "Ensemble vs best trial (5)" in section
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td><td>([\d.]+)</td><td>([\d.]+)</td>",
                      section)
    assert rows == [
        ("validation", "accuracy", "0.8125", "0.7500"),
        ("validation", "log_loss", "0.4100", "0.5200"),
        ("test", "accuracy", "0.9000", "0.8500"),
        ("test", "log_loss", "0.3000", "0.3500"),
    ]
    _record_ensemble(services, sid, {"skipped": "no completed trial kept its model"})
    assert "No ensemble: no completed trial kept its model." in _ensemble_section(
        build_report(services, sid)
    )


def test_report_of_a_study_without_trials_says_so(services: Services) -> None:
    sid = services.create_study(tiny_spec("report-empty")).id
    page = build_report(services, sid)
    _assert_self_contained(page)
    assert "Plotly.newPlot" not in page
    assert page.count("No completed trial yet.") == 4
    assert "No trial has finished yet." in page


def test_api_serves_the_report_and_404s_an_unknown_study(
    services: Services, sqlite_url: str
) -> None:
    sid = finished_study(services, "report-api", per_class=False)
    with TestClient(create_app(make_settings(sqlite_url), run_reaper=False)) as client:
        r = client.get(f"/studies/{sid}/report")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert '<section id="best-trial">' in r.text
        assert 'id="per-class"' not in r.text  # no final evaluation recorded
        assert client.get("/studies/999/report").status_code == 404


def test_cli_writes_the_report_file(services: Services, sqlite_url: str, tmp_path: Path) -> None:
    sid = finished_study(services, "report-cli")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli_app, ["report", str(sid), "--out", str(out), "--database-url", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count("<section id=") == len(SECTIONS)
    bad = CliRunner().invoke(cli_app, ["report", "999", "--database-url", sqlite_url])
    assert bad.exit_code == 2


@pytest.mark.parametrize("with_sklearn", [True, False])
def test_importances_use_fanova_or_ped_anova(
    services: Services, monkeypatch: pytest.MonkeyPatch, with_sklearn: bool
) -> None:
    sid = finished_study(services, f"report-imp-{with_sklearn}")
    if not with_sklearn:
        monkeypatch.setitem(__import__("sys").modules, "sklearn", None)  # import fails
    page = build_report(services, sid)
    assert ("Evaluator: fANOVA" if with_sklearn else "Evaluator: PED-ANOVA") in page
    section = page.split('<section id="importances">', 1)[1].split("</section>", 1)[0]
    assert "Plotly.newPlot" in section
