"""General capability with lm-evaluation-harness (eval.general, ftscope/general.py): the sandbox tasks, the rows
every cell writes, the report's section and finding, the cells' ids, and validate's errors."""

import importlib.metadata
import json
import shutil
from pathlib import Path

import pytest
import yaml

from flows.study import study
from ftscope import general
from ftscope.config import load_config
from ftscope.plan import cell_ids
from ftscope.report.render import build_report, read_results, report_text
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.validate import validate

ROOT = Path(__file__).resolve().parents[1]
TASK_YAML = """task: toy-general
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
"""


def _config(base: str, tmp_path: Path, name: str, general_section: dict | None, **over) -> str:
    raw = yaml.safe_load(Path(base).read_text())
    raw.update(study=name, results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"), **over)
    raw["eval"] = {**raw.get("eval", {}), **({"general": general_section} if general_section else {})}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _toy_task(folder: Path, context: str = "the sky is") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "toy.jsonl"
    data.write_text("".join(json.dumps({"context": f"{context} {i}", "choices": ["blue.", "green."], "label": 0}) + "\n"
                            for i in range(6)))
    (folder / "toy.yaml").write_text(TASK_YAML.format(data=data))
    return folder


@pytest.fixture(scope="module")
def general_store(smoke_config, smoke_base, prefect_harness, tmp_path_factory):
    """configs/smoke-general.yaml run once over the session's smoke model and mastery."""
    tmp = tmp_path_factory.mktemp("general")
    raw = yaml.safe_load((ROOT / "configs/smoke-general.yaml").read_text())
    path = _config(smoke_config, tmp, "smoke-general", raw["eval"]["general"], grid=raw["grid"], lora=raw["lora"])
    shutil.copytree(Path(smoke_base[0].results_dir) / "mastery", tmp / "results" / "mastery")
    state = study(config_path=path, return_state=True)
    assert state.is_completed(), state.message
    return path, Store(str(tmp / "results"))


def test_sandbox_tasks_are_the_worlds_unstudied_facts(smoke_base):
    cfg, data, *_ = smoke_base
    ds = next(iter(data.datasets.values()))
    studied = {it["subject"] for it in ds.items}
    facts = general.background_facts(data)
    assert facts and not {f["subject"] for f in facts} & studied
    mc = general.SANDBOX.get("sandbox-facts").documents(data)
    assert all(len(d["choices"]) == 4 and len(set(d["choices"])) == 4 for d in mc)
    truth = {(f["subject"], f["answer"]) for f in facts}
    for d in mc[:50]:  # the labelled choice is the fact's answer, the context names its subject
        answer = d["choices"][d["label"]].rstrip(".")
        assert any(s in d["context"] and a == answer for s, a in truth)
    text = general.SANDBOX.get("sandbox-text").documents(data)
    assert text and not {d["text"] for d in text} & set(ds.documents)  # never read in pretraining


def test_every_cell_scored_against_its_base_model(general_store):
    path, store = general_store
    cells = store.latest_cells()
    assert len(cells) == 5 and all(r["status"] == "done" for r in cells.values())
    rows = store.read("general").to_pylist()
    version = importlib.metadata.version("lm_eval")
    assert {r["cell_id"] for r in rows} == set(cells)
    assert {(r["task"], r["metric"]) for r in rows} >= {("sandbox-facts", "acc"), ("sandbox-text", "bits_per_byte")}
    assert all(r["lm_eval"] == version and r["task_hash"] for r in rows)
    assert all(r["stderr"] is not None for r in rows if r["metric"] == "acc")
    metrics = [r for r in store.read("metrics").to_pylist() if r["domain"] == "general"]
    scores = store.read("scores").to_pylist()
    for m in metrics:  # the mean, n and sum of the per-document scores, as every test set's
        mine = [s["value"] for s in scores if s["cell_id"] == m["cell_id"] and s["dataset"] == m["dataset"]
                and s["metric"] == m["metric"] and s["domain"] == "general"]
        assert len(mine) == m["n"] == (120 if m["dataset"] == "sandbox-facts" else 88)
        assert abs(sum(mine) - m["total"]) < 1e-6
    acc = {r["cell_id"]: r["value"] for r in rows if r["metric"] == "acc"}
    assert all(abs(acc[m["cell_id"]] - m["value"]) < 1e-9 for m in metrics if m["metric"] == "acc")
    for r in cells.values():  # the cell's id and row name lm-eval's version and every task's hash
        spec = json.loads(r["config"])["study"]["general"]
        assert spec["lm_eval"] == version and set(spec["tasks"]) == {"sandbox-facts", "sandbox-text"}
        assert json.loads(r["versions"])["lm_eval"] == version
    # the study's own rows of each cell are there too, in the same file
    assert {r["domain"] for r in store.read("metrics").to_pylist()} == {"id", "ood", "general"}

    # a re-run scores nothing again
    assert study(config_path=path, return_state=True).is_completed()
    assert store.read("cells").num_rows == 5


def test_report_shows_general_capability(general_store, tmp_path):
    path, store = general_store
    results = read_results(store, "smoke-general")
    text = report_text(store, "smoke-general", results)
    assert "general capability (lm-eval)" in text
    assert "sft level=0 n=16" in text and "bits_per_byte" in text
    assert "costs general capability (sandbox-text, bits_per_byte)" in text
    # the study's own tables never show general rows
    accuracy = text.split("accuracy (%) on id_test")[1].split("\n\n")[0]
    assert "sandbox-facts" not in accuracy
    page = build_report(store, tmp_path / "report", "smoke-general", results).read_text()
    assert "General capability against the base model (lm-eval)" in page
    assert (tmp_path / "report" / "figures" / "general.png").exists()


def test_ids_follow_the_tasks(smoke_config, smoke_base, tmp_path):
    cfg0, data, base, _ = smoke_base
    study = STUDIES.get("k")
    plain = cell_ids(cfg0, study, data, {cfg0.models[0].name: base})
    assert "general" not in study.cell_config(cfg0, None) and "general" not in study.cell_config(cfg0, None)["eval"]
    tasks = _toy_task(tmp_path / "tasks")

    def ids(name):
        cfg = load_config(_config(smoke_config, tmp_path, name, {"tasks": ["toy-general"],
                                                                 "include_path": [str(tasks)]}))
        general._identity.cache_clear()
        general._manager.cache_clear()
        return cell_ids(cfg, study, data, {cfg.models[0].name: base})

    first = ids("a")
    assert set(first) == set(plain) and not set(first.values()) & set(plain.values())
    assert ids("b") == first  # the same task: the same ids (the study's name is no part of them)
    _toy_task(tmp_path / "tasks", context="the sea is")  # its data edited: every cell that used it is new
    assert not set(ids("c").values()) & set(first.values())


@pytest.mark.parametrize("tasks, expect", [
    (["sandbox-factz"], "did you mean 'sandbox-facts'"),
    ([{"task": "sandbox-facts", "metric": "f1"}], "produces ['acc', 'acc_norm'], not 'f1'"),
    (["toy-missing"], "the data of task toy-missing cannot be loaded here"),
])
def test_validate_names_what_to_fix(smoke_config, smoke_base, tmp_path, tasks, expect):
    folder = _toy_task(tmp_path / "tasks")
    (folder / "missing.yaml").write_text(TASK_YAML.format(data=tmp_path / "nowhere.jsonl").replace("toy-general",
                                                                                                     "toy-missing"))
    general._manager.cache_clear()
    _, problems, _ = validate(_config(smoke_config, tmp_path, "bad", {"tasks": tasks, "include_path": [str(folder)]}))
    assert any(expect in p for p in problems), problems


def test_validate_without_lm_eval(smoke_config, smoke_base, tmp_path, monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name == "lm_eval":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    _, problems, _ = validate(_config(smoke_config, tmp_path, "no-lm-eval", {"tasks": ["sandbox-facts"]}))
    assert problems == ["eval.general needs lm-evaluation-harness: pip install 'ftscope[general]' (or pip install "
                        "lm-eval)"]


def test_validate_study_g(smoke_g_config, smoke_g_base, tmp_path):
    """Study G takes eval.general too: a task of the user's is costed; the sandbox tasks need Study K's world."""
    folder = _toy_task(tmp_path / "tasks")
    general._manager.cache_clear()
    _, problems, notes = validate(_config(smoke_g_config, tmp_path, "g-general",
                                          {"tasks": ["toy-general"], "include_path": [str(folder)]}))
    assert not problems and any("6 documents per cell" in n for n in notes)
    _, problems, _ = validate(_config(smoke_g_config, tmp_path, "g-sandbox", {"tasks": ["sandbox-text"]}))
    assert any("built from a sandbox-k world" in p for p in problems), problems
