"""The Prefect UI a local run prints a link to: the temporary server serves it, and the run's page shows its cells
and its artifacts while the run's server lasts (headless Chromium)."""

from pathlib import Path

import yaml
from test_report import _browser

from flows.study import study


def test_the_run_link_opens_the_run_with_its_cells_and_progress(smoke_done, tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from flows.server import local_api

    browser = _browser()
    path = smoke_done(tmp_path)
    raw = yaml.safe_load(Path(path).read_text())
    raw["grid"]["sample_counts"] = [8, 12]  # two new cells to run; the others are done
    Path(path).write_text(yaml.safe_dump(raw))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("FTSCOPE_HOME", str(tmp_path / "home"))
    try:
        with local_api() as url, temporary_settings({PREFECT_API_URL: url}):
            state = study(config_path=path, return_state=True)
            assert state.is_completed()
            browser.set_window_size(1400, 1000)
            browser.get(f"{url[:-4]}/runs/flow-run/{state.state_details.flow_run_id}")  # the "View at" link
            body = lambda: browser.find_element(By.TAG_NAME, "body").text  # noqa: E731
            seen = {}
            for tab, expect in (("Task Runs", "cell sandbox-tiny/level=0/n=12/sft/s0"), ("Artifacts", "cells done of 4")):
                WebDriverWait(browser, 60).until(lambda d: tab in body())
                found = browser.find_elements(By.XPATH, f"//li[contains(@class, 'p-tab')][normalize-space(.)='{tab}']")
                next(e for e in found if e.is_displayed()).click()
                try:
                    WebDriverWait(browser, 60).until(lambda d: expect in body())
                except TimeoutException:
                    browser.save_screenshot(str(tmp_path / "run.png"))
                    raise AssertionError(f"{expect!r} not on the {tab} tab; the page reads:\n{body()[:3000]}") from None
                seen[tab] = body()
            browser.save_screenshot(str(tmp_path / "run.png"))
    finally:
        browser.quit()
    assert "Task runs" in seen["Task Runs"] and "smoke-progress" in seen["Artifacts"]
