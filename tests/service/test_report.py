"""The study report (no TensorFlow): one self-contained HTML file with every section, from
``build_report``, ``GET /studies/{id}/report`` and ``tuner-service report``."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from fastapi.testclient import TestClient
from support import make_settings, tiny_spec
from typer.testing import CliRunner

from tuner_service.api.app import create_app
from tuner_service.cli import app as cli_app
from tuner_service.optuna_bridge import STUDY_ATTR_TEST_CLASSES
from tuner_service.report import SECTIONS, build_report
from tuner_service.service import Services

PER_CLASS = {
    "trial_number": 3,
    "labels": [0, 1, 2],
    "precision": [1.0, 0.5, 0.75],
    "recall": [0.9, 0.6, 0.7],
    "f1": [0.947, 0.545, 0.724],
    "support": [10, 10, 10],
    "confusion_matrix": [[9, 1, 0], [2, 6, 2], [0, 3, 7]],
}


def _finished_study(services: Services, name: str, *, per_class: bool = True) -> int:
    """A study with 6 completed trials, each with 3 intermediate values, as a worker leaves it."""
    row = services.create_study(tiny_spec(name, budget={"n_trials": 6, "max_epochs": 3}))
    study = services.optuna_study(row)
    dists = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True),
        "filters": optuna.distributions.CategoricalDistribution([4, 8]),
    }
    for i in range(6):
        lr = 1e-3 * (i + 1)
        acc = 0.5 + 0.05 * i
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": lr, "filters": [4, 8][i % 2]},
                distributions=dists,
                value=acc,
                intermediate_values={0: acc - 0.2, 1: acc - 0.1, 2: acc},
            )
        )
    if per_class:
        study.set_user_attr(STUDY_ATTR_TEST_CLASSES, PER_CLASS)
    return row.id


def _assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    # nothing is loaded from elsewhere: no script/link/img pointing at a URL
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"?(https?:)?//", page)
    assert "cdn.plot.ly" not in page.split("</script>", 1)[1]  # only inside plotly.js itself


def test_report_has_every_section_and_the_confusion_matrix(services: Services) -> None:
    sid = _finished_study(services, "report-full")
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
    sid = _finished_study(services, "report-api", per_class=False)
    with TestClient(create_app(make_settings(sqlite_url), run_reaper=False)) as client:
        r = client.get(f"/studies/{sid}/report")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert '<section id="best-trial">' in r.text
        assert 'id="per-class"' not in r.text  # no final evaluation recorded
        assert client.get("/studies/999/report").status_code == 404


def test_cli_writes_the_report_file(services: Services, sqlite_url: str, tmp_path: Path) -> None:
    sid = _finished_study(services, "report-cli")
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
    sid = _finished_study(services, f"report-imp-{with_sklearn}")
    if not with_sklearn:
        monkeypatch.setitem(__import__("sys").modules, "sklearn", None)  # import fails
    page = build_report(services, sid)
    assert ("Evaluator: fANOVA" if with_sklearn else "Evaluator: PED-ANOVA") in page
    section = page.split('<section id="importances">', 1)[1].split("</section>", 1)[0]
    assert "Plotly.newPlot" in section
