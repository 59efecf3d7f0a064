"""The study report (no TensorFlow): one self-contained HTML file with every section, from
``build_report``, ``GET /studies/{id}/report`` and ``tuner-service report``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import finished_study, make_settings, tiny_spec
from typer.testing import CliRunner

from tuner_service.api.app import create_app
from tuner_service.cli import app as cli_app
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
