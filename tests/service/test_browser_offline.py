"""/docs, /redoc and the study report in a real browser (headless Chromium) with every
request that leaves the host refused: the pages work from files installed with the package,
and ask for nothing elsewhere. A plain FastAPI app (Swagger UI from a CDN) is the control: its
/docs asks the CDN and stays empty, so the block and the check are real."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser import chromium, page_requests, screenshot, wait_for
from fastapi import FastAPI
from support import api_in_thread, finished_study, make_settings

from tuner_service.api.app import create_app
from tuner_service.migrate import upgrade
from tuner_service.service import Services

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The service's API on a database holding one finished study: (base URL, study id)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('offline') / 'tuner.db'}"
    upgrade(url)
    services = Services(make_settings(url))
    sid = finished_study(services, "offline-report")
    services.close()
    with api_in_thread(create_app(make_settings(url), run_reaper=False)) as base:
        yield base, sid


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium() as d:
        yield d


def _loaded(driver: Any) -> bool:
    return bool(driver.execute_script("return document.readyState === 'complete'"))


def test_swagger_ui_lists_the_operations_offline(api: tuple[str, int], driver: Any) -> None:
    base, _ = api
    driver.get(f"{base}/docs")
    wait_for(driver, "Swagger UI's operations",
             lambda d: d.execute_script("return document.querySelectorAll('.opblock').length"))
    paths = driver.execute_script(
        "return Array.from(document.querySelectorAll('.opblock-summary-path'))"
        ".map(e => e.innerText.replace(/\\u200b/g, ''))"
    )
    for path in ("/studies", "/studies/{study_id}", "/studies/{study_id}/report", "/healthz"):
        assert path in paths, (path, paths)
    screenshot(driver, "api-docs-swagger")
    requests = page_requests(driver)
    assert f"{base}/static-offline-docs/swagger-ui-bundle.js" in requests
    assert [u for u in requests if not u.startswith(base)] == []


def test_redoc_lists_the_operations_offline(api: tuple[str, int], driver: Any) -> None:
    base, _ = api
    driver.get(f"{base}/redoc")
    wait_for(driver, "ReDoc's operations", lambda d: "/studies/{study_id}/report" in str(
        d.execute_script("return document.body.innerText")))
    screenshot(driver, "api-docs-redoc")
    # ReDoc names an image on its vendor's CDN; the page's CSP keeps the browser from asking
    requests = page_requests(driver)
    assert f"{base}/static-offline-docs/redoc.standalone.js" in requests
    assert [u for u in requests if not u.startswith(base)] == []


def test_the_report_draws_every_chart_offline(api: tuple[str, int], driver: Any) -> None:
    base, sid = api
    driver.get(f"{base}/studies/{sid}/report")
    wait_for(driver, "the page", _loaded)
    n = driver.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg')"
                              ".length")
    assert n >= 5, n  # history, learning curves, importances, parallel coordinates, matrix
    assert driver.execute_script("return typeof Plotly") == "object"
    driver.execute_script("document.getElementById('best-trial').scrollIntoView()")
    screenshot(driver, "study-report-best-trial")
    assert page_requests(driver) == [f"{base}/studies/{sid}/report"]  # one file, nothing else


def test_control_cdn_docs_stay_blank_and_are_caught() -> None:
    plain = FastAPI()

    @plain.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    with api_in_thread(plain) as base, chromium() as driver:
        driver.get(f"{base}/docs")
        wait_for(driver, "the page", _loaded)
        assert driver.execute_script("return typeof SwaggerUIBundle") == "undefined"
        assert driver.execute_script("return document.querySelectorAll('.opblock').length") == 0
        off_host = [u for u in page_requests(driver) if not u.startswith(base)]
        assert any("cdn.jsdelivr.net" in u for u in off_host), off_host
