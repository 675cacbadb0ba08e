"""The report, rendered from stores written by the smoke studies: every figure and table, failed and
missing cells named as gaps, and the HTML page loading cleanly in a real (headless) browser."""

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pytest

from ftscope.report.render import build_report, report_text
from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]
K_FIGURES = ["k_accuracy", "k_accuracy_by_test_level", "k_kl", "k_restoration", "k_params"]
G_FIGURES = ["g_matrix", "g_shots", "g_params"]


def _with_a_failed_and_a_missing_cell(src: str, dst: Path) -> tuple[str, str]:
    """A copy of a store where one planned cell failed on its latest attempt and another never ran."""
    shutil.copytree(src, dst)
    store = Store(str(dst))
    plan = store.read("plan").to_pylist()
    latest = store.latest_cells()
    failed, missing = plan[-1], plan[-2]  # two restore cells: every figure still has data
    row = {**latest[failed["cell_id"]], "status": "failed", "error": "OutOfMemory: out of memory (a test)",
           "finished_at": datetime.now(timezone.utc)}
    store.write("cells", f"{failed['cell_id']}-zz", [row])
    for f in (dst / "cells").glob(f"{missing['cell_id']}-*.parquet"):
        f.unlink()
    return failed["label"], missing["label"]


def test_study_k_report_from_the_store(methods_store, tmp_path):
    _, results = methods_store
    failed, missing = _with_a_failed_and_a_missing_cell(results, tmp_path / "store")
    page = build_report(Store(str(tmp_path / "store")), tmp_path / "out")
    html = page.read_text()
    for name in K_FIGURES:
        assert (tmp_path / "out" / "figures" / f"{name}.png").stat().st_size > 1000, name
        assert (tmp_path / "out" / "figures" / f"{name}.svg").exists(), name
    for title in ("Accuracy vs sample count", "Accuracy by the test facts' mastery level", "Token-level KL",
                  "Restoring the most-changed parameters", "Parameter change", "what the paper found", "Cells",
                  "Config of the latest run", "Software versions", "Timings of the done cells"):
        assert escape(title) in html, title
    assert html.count("<img") == len(K_FIGURES) + 1 and html.count("<table>") >= 8  # + the findings' forest plot
    assert "1 failed, 1 missing" in html and failed in html and missing in html and "OutOfMemory" in html
    assert "not run (yet)" in html
    assert "restoring the most-changed parameters" in html  # a comparison, with its verdict
    assert any(v in html for v in ("reproduced", "not distinguishable", "contradicted"))


def test_the_report_opens_with_the_findings_and_their_figure(methods_store, tmp_path):
    _, results = methods_store
    html = build_report(Store(results), tmp_path / "out").read_text()
    first = html.index("<h2")
    assert "what the paper found" in html[first:html.index("</h2>", first)]
    section = html[first:html.index("<h2", first + 1)]
    assert "<img alt=" in section and "findings_" in next(p.name for p in (tmp_path / "out" / "figures").glob("findings_*.png"))
    assert "<nav><ol>" in html and "id='cells'" in html and "done cells; written" in html


def test_study_k_comparisons_pair_every_test_item(methods_store):
    """Study K stores an item's score under its mastery level only: the `all` slice must still pair them."""
    from ftscope.report.results import Results
    from ftscope.studies import STUDIES

    _, results = methods_store
    store = Store(results)
    r = Results(store)
    n_id = {m["n"] for m in store.read("metrics").to_pylist() if m["domain"] == "id" and m["slice"] == "all"}
    comps = STUDIES.get("k").report.comparisons(r)
    assert len(comps) >= 3 and {c.n for c in comps} == n_id  # every ID test item, on both arms
    assert all(c.verdict in ("reproduced", "not distinguishable", "contradicted") for c in comps)


def test_study_g_report_from_the_store(g_store, tmp_path):
    page = build_report(Store(g_store), tmp_path / "out")
    html = page.read_text()
    for name in G_FIGURES:
        assert (tmp_path / "out" / "figures" / f"{name}.png").stat().st_size > 1000, name
    for title in ("Train x test", "Score vs shots", "Parameter difference", "in-domain FT beats the zero-shot base",
                  "FTICL beats FT out of domain"):
        assert title in html, title
    assert "in_domain" in report_text(Store(g_store))


def test_cli_report_and_results(methods_store, tmp_path):
    _, results = methods_store
    out = subprocess.run([sys.executable, "-m", "flows.cli", "report", results, "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "accuracy (%) on id_test" in out.stdout and "the paper's findings here" in out.stdout and "report.html" in out.stdout
    q = subprocess.run([sys.executable, "-m", "flows.cli", "results", results, "--table", "metrics", "--where",
                        "domain = 'id' AND slice = 'all'", "--format", "csv"], capture_output=True, text=True, cwd=ROOT)
    assert q.returncode == 0 and q.stdout.splitlines()[0].startswith("cell_id,task,dataset")
    assert len(q.stdout.splitlines()) == 1 + len(Store(results).done_cells())
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "results", results, "--table", "nope"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown table" in bad.stderr
    v = subprocess.run([sys.executable, "-m", "flows.cli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert v.stdout.startswith("ftscope ")


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_the_html_report_loads_in_headless_chromium(methods_store, tmp_path):
    _, results = methods_store
    page = build_report(Store(results), tmp_path / "out")
    browser = _browser()
    try:
        widths = {}
        for width in (1400, 800):  # a wide screen and a narrow one: the page never scrolls sideways
            browser.set_window_size(width, 900)
            browser.get(page.resolve().as_uri())
            widths[width] = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth, "
                                                   "document.querySelectorAll('nav a').length]")
            browser.save_screenshot(str(tmp_path / f"report-{width}.png"))
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        jump = browser.execute_script("const a = document.querySelector('nav a'); a.click(); "
                                      "return [a.getAttribute('href'), location.hash]")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        browser.quit()
    assert all(scroll <= inner and links >= 8 for scroll, inner, links in widths.values()), widths
    assert jump[0] == jump[1] and jump[1].startswith("#")
    assert len(images) == len(K_FIGURES) + 1 and all(ok and width > 100 for ok, width, _ in images), images
    assert errors == [], json.dumps(errors)
    assert (tmp_path / "report-800.png").stat().st_size > 10_000


def test_the_readme_findings_are_rewritten_from_the_store(methods_store, tmp_path):
    from ftscope.report.render import findings_markdown, read_results, rewrite_readme

    _, results = methods_store
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- findings:smoke-methods -->\nold, typed by hand\n<!-- /findings:smoke-methods -->\nend\n")
    kind, res = read_results(Store(results), "smoke-methods")["smoke-methods"]
    assert rewrite_readme(readme, "smoke-methods", findings_markdown(kind, res))
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "typed by hand" not in text
    assert "| finding (paper) |" in text and "restoring the most-changed parameters" in text
    assert "Spearman(R, times stated in pretraining)" in text and "accuracy (%) on" in text
    assert not rewrite_readme(readme, "another-study", "x")  # no markers: nothing written
