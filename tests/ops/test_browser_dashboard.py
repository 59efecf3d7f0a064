"""``tuner-service dashboard`` in a real browser (headless Chromium, offline but for the
loopback), on the database in which the service's worker ran an Optuna, a Keras Tuner and a
grid study: the three are listed, one opens with its intermediate-values chart, and its trials
are listed with their states and intermediate values. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, page_requests, screenshot, wait_for
from ops_support import TrainedStudy, serving
from processes import BIN, free_port

pytestmark = pytest.mark.slow


def _text(driver: Any) -> str:
    return str(driver.execute_script("return document.body.innerText"))


def _traces(driver: Any, graph: str) -> int:
    return int(driver.execute_script(
        f"return document.querySelectorAll('#{graph} .scatterlayer .trace').length"
    ))


def test_dashboard_page_lists_the_three_studies_and_opens_one(
    trained: TrainedStudy, three_studies: dict[str, int], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": trained.url}
    cmd = [str(BIN / "tuner-service"), "dashboard", "--port", str(port)]
    with serving(cmd, port, tmp_path / "dashboard.log", env) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/")
        wait_for(driver, "the three studies", lambda d: all(n in _text(d) for n in three_studies))
        screenshot(driver, "dashboard-studies")

        name = "ops-keras-tuner"
        driver.find_element(By.XPATH, f"//*[text()[contains(., '{name}')]]").click()
        wait_for(driver, "the study page", lambda d: "/dashboard/studies/" in d.current_url)
        study_url = driver.current_url.rstrip("/")
        # The intermediate-values chart: one line per trial (one point per epoch).
        n_trials = three_studies[name]
        wait_for(driver, "the intermediate-values chart",
                 lambda d: _traces(d, "graph-intermediate-values") == n_trials)
        assert "Intermediate values" in _text(driver)
        driver.execute_script(
            "document.getElementById('graph-intermediate-values').scrollIntoView()"
        )
        screenshot(driver, "dashboard-study-intermediate-values")

        # The study's trials (optuna-dashboard's "Trials (List)" page): every trial with its
        # state; the selected one with its intermediate values and parameters.
        driver.find_element(By.CSS_SELECTOR, f"a[href$='{study_url.split('/dashboard', 1)[1]}"
                                             "/trials']").click()
        wait_for(driver, "the trials page", lambda d: d.current_url.endswith("/trials"))
        wait_for(driver, "every trial listed",
                 lambda d: f"{n_trials} Trials" in _text(d)
                 and all(f"Trial {i}" in _text(d) for i in range(n_trials)))
        page = _text(driver)
        assert page.count("Complete") >= n_trials
        for heading in ("Intermediate Values", "Parameter", "learning_rate"):
            assert heading in page, heading
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot(driver, "dashboard-study-trials")

        # Everything the pages loaded came from the dashboard itself.
        requests = page_requests(driver)
        assert f"{base}/static/bundle.js" in requests
        assert [u for u in requests if not u.startswith(base)] == []
