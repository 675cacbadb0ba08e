"""Studies that are merely unusual run end to end, report included: an ICL-only and an FT-only Study G, a
base-only and a single-level, single-seed, single-count Study K. Their reports render whatever the cells
hold (no figure for what they lack) and never fail on an empty table."""

import shutil
from pathlib import Path

import pytest
import yaml

from flows.study import study
from ftscope.report.render import build_report, read_results, report_text
from ftscope.store import Store

K_STUDIES = {"base-only": {"methods": ["base"]}, "one-of-each": {"methods": ["sft"], "levels": [4], "sample_counts": [8]}}
G_STUDIES = {"icl-only": {"methods": ["icl"]}, "ft-only": {"methods": ["sft"], "train": ["sbx-reviews-products"]}}


def _run(config: str, tmp_path: Path, name: str, grid: dict, mastery_from: str | None = None) -> Store:
    raw = yaml.safe_load(Path(config).read_text())
    raw.update(study=name, results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"),
               grid={**raw["grid"], **grid})
    if mastery_from and not (tmp_path / "results" / "mastery").exists():
        shutil.copytree(Path(mastery_from) / "mastery", tmp_path / "results" / "mastery")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    state = study(config_path=str(path), return_state=True)
    assert state.is_completed(), state.message
    return Store(str(tmp_path / "results"))


def _report(store: Store, name: str, out: Path) -> tuple[str, str]:
    results = read_results(store, name)
    page = build_report(store, out, name, results)
    return report_text(store, name, results), page.read_text()


@pytest.mark.parametrize("name", sorted(K_STUDIES))
def test_unusual_study_k(name, smoke_config, smoke_base, prefect_harness, tmp_path):
    store = _run(smoke_config, tmp_path, name, K_STUDIES[name], mastery_from=smoke_base[0].results_dir)
    text, html = _report(store, name, tmp_path / "report")
    assert "accuracy (%) on id_test" in text and "no finished cells yet" not in text.split("token-level KL")[0]
    figures = {p.stem for p in (tmp_path / "report" / "figures").glob("*.png")}
    if name == "base-only":
        assert "base" in text and figures == set() and "parameter change: no SFT cells yet" in text
    else:
        assert figures == {"k_accuracy", "k_accuracy_by_test_level", "k_kl", "k_params"} and "sft" in text
    assert ">Cells</h2>" in html and "1 done, 0 failed, 0 missing" in html


@pytest.mark.parametrize("name", sorted(G_STUDIES))
def test_unusual_study_g(name, smoke_g_config, smoke_g_base, prefect_harness, tmp_path):
    store = _run(smoke_g_config, tmp_path, name, G_STUDIES[name])
    text, html = _report(store, name, tmp_path / "report")
    figures = {p.stem for p in (tmp_path / "report" / "figures").glob("*.png")}
    if name == "icl-only":
        assert "ICL-2" in text and "parameter difference: no fine-tuned cells yet" in text
        assert figures == {"g_matrix", "g_shots"}
    else:
        assert "FT " in text and figures == {"g_matrix", "g_shots", "g_params"}
    assert "what the paper found" in html and "missing" in html  # findings without both arms: missing, not a crash
