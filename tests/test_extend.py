"""Extending ftscope without touching it: a method and a metric are one plug-in module (the method with its
config section), a dataset is one YAML description plus its data file; a tiny study then runs with them,
and the report shows the plug-in's method and metric with no other file changed."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from flows.study import study
from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]

NOOP = '''
"""`noop`: the base model, untouched, as a method of its own (with a config section)."""
from pydantic import BaseModel

from ftscope.methods import Built, Recipe, register
from ftscope.metrics import Metric
from ftscope.metrics import register as register_metric


class NoopConfig(BaseModel):
    note: str = "nothing"


def build(run):
    assert run.cfg.noop.note == "from the config"
    return Built(run.load(), checkpoint=run.base_dir, base_view="self")


register(Recipe("noop", build, section=("noop", NoopConfig)))


def answered(prediction, golds):
    """`answered`: 1 when the model wrote anything at all (a toy metric of a plug-in)."""
    return float(bool(prediction.strip()))


register_metric(Metric("answered", "generate", answered, proportion=True))
'''

TOY = '''
name: toy-facts
task: cbqa
type: cbqa
metric: answered
templates: ["Question: {question}\\nAnswer:"]
target: answers
source: {format: files, records: toy.json}
groups: {id: [T1], ood: [T2]}
subsets:
  T1: {name: birthplace, questions: ["Where was {s} born?", "What is the birthplace of {s}?"]}
  T2: {name: workplace, questions: ["Where does {s} work?", "Which city does {s} work in?"]}
'''


def _toy_study(tmp_path, data, base, plugin: str, methods: list[str], extra: dict, metric: str = "answered") -> Path:
    """A config of a tiny Study K over toy-facts (a described dataset of the smoke world's facts, scored by `metric`)
    with `plugin`."""
    (tmp_path / "my_plugin.py").write_text(plugin)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "toy.yaml").write_text(textwrap.dedent(TOY).replace("metric: answered", f"metric: {metric}"))
    # facts of the smoke world, rewritten as a dataset of two relations of our own
    items = next(iter(data.datasets.values())).items
    p19 = [it for it in items if it["relation"] == "P19" and it["split"] == "train"][:12]
    p20 = [it for it in items if it["relation"] == "P20"][:6]
    records = ([{"relation": "T1", "subject": it["subject"], "answers": it["answers"], "split": s}
                for it, s in zip(p19, ["train"] * 8 + ["test"] * 4)]
               + [{"relation": "T2", "subject": it["subject"], "answers": it["answers"], "split": "test"} for it in p20])
    (tmp_path / "datasets" / "toy.json").write_text(json.dumps(records))
    path = tmp_path / "toy-study.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "k", "study": "toy", "results_dir": str(tmp_path / "results"), "artifacts_dir": str(tmp_path / "a"),
        "cache_dir": str(tmp_path / "cache"), "plugins": ["my_plugin.py"], "datasets_dirs": ["datasets"],
        "data": {"dataset": "toy-facts"}, "models": [{"name": "m", "path": base}],
        "mastery": {"n_map": 2, "n_sample": 2, "max_new_tokens": 4},
        "grid": {"levels": ["mixed"], "sample_counts": [4], "methods": methods},
        "train": {"epochs": 1, "lr": 1e-3}, "eval": {"max_new_tokens": 4}, **extra}))
    return path


def test_a_plugin_method_and_a_described_dataset_run_a_study(smoke_base, prefect_harness, tmp_path):
    cfg, data, base, _ = smoke_base
    path = _toy_study(tmp_path, data, base, NOOP, ["noop", "sft"], {"noop": {"note": "from the config"}})

    # plugins and datasets_dirs are relative to the config file, as a user would write them
    assert study(config_path=str(path), return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    cells = {r["variant"]: r for r in store.latest_cells().values()}
    assert set(cells) == {"noop", "sft"} and all(r["status"] == "done" for r in cells.values())
    metrics = store.sql("SELECT c.method, m.dataset, m.domain, m.n FROM metrics m JOIN cells c USING (cell_id) "
                        "WHERE m.slice = 'all' ORDER BY ALL").fetchall()
    assert metrics == [("noop", "toy-facts", "id", 4), ("noop", "toy-facts", "ood", 6),
                       ("sft", "toy-facts", "id", 4), ("sft", "toy-facts", "ood", 6)]
    kl = {r["cell_id"]: r["value"] for r in store.read("kl").to_pylist() if r["slice"] == "all"}
    assert kl[cells["noop"]["cell_id"]] == 0 and kl[cells["sft"]["cell_id"]] > 0
    mastery = store.read("mastery").to_pylist()
    assert len(mastery) == 18 and {r["n_map"] for r in mastery} == {2}
    assert {r["metric"] for r in store.read("metrics").to_pylist()} == {"answered"}

    # the report, from the store alone in a fresh process, shows the plug-in's method and metric
    out = subprocess.run([sys.executable, "-m", "flows.cli", "report", str(tmp_path / "results"), "--out",
                          str(tmp_path / "report")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    noop = [line for line in out.stdout.splitlines() if line.split()[1:2] == ["noop"]]
    assert len(noop) == 3, out.stdout  # ID and OOD accuracy by the plug-in's metric, and KL
    answered = {m["cell_id"]: m["value"] for m in store.read("metrics").to_pylist() if m["slice"] == "all"
                and m["domain"] == "id"}
    assert f"{100 * answered[cells['noop']['cell_id']]:.3g}" in noop[0]
    assert "noop" in (tmp_path / "report" / "report.html").read_text()


NORM = '''
"""`norm`: the L2 norm of each cell's weights, as a measurement of every cell (with a config section)."""
from pydantic import BaseModel

from ftscope.measurements import Measurement, register


class NormConfig(BaseModel):
    scale: float = 1.0


def weight_norm(run, model):
    norm = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()) ** 0.5
    return {"metrics": [{"cell_id": run.cid, "task": "norm", "dataset": "weights", "domain": "norm", "slice": "all",
                         "prompt_map": 0, "shots": 0, "metric": "l2", "n": 1, "total": norm,
                         "value": norm * run.cfg.norm.scale}]}


register(Measurement("norm", weight_norm, section=("norm", NormConfig), identity=lambda cfg: cfg.norm.model_dump(),
                     domain="norm"))
'''


def test_a_plugin_measurement_runs_on_every_cell(smoke_base, prefect_harness, tmp_path):
    """A toy measurement is one plug-in module: every cell's rows gain it, the ids say it was asked for, the study's
    own tables leave its rows out, and no other file changes."""
    from ftscope import measurements
    from ftscope.config import parse_config
    from ftscope.models import load_model
    from ftscope.plan import cell_ids
    from ftscope.report.results import Results
    from ftscope.runs import headline
    from ftscope.studies import STUDIES

    cfg, data, base, _ = smoke_base
    path = _toy_study(tmp_path, data, base, NORM, ["base", "sft"], {"norm": {"scale": 2.0}},
                      metric="contains")
    assert study(config_path=str(path), return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    cells = {r["method"]: r for r in store.latest_cells().values()}
    assert set(cells) == {"base", "sft"} and all(r["status"] == "done" for r in cells.values())
    norms = {r["cell_id"]: r["value"] for r in store.read("metrics").to_pylist() if r["domain"] == "norm"}
    assert set(norms) == {r["cell_id"] for r in cells.values()}  # one row a cell, written with the study's own
    weights = load_model(base, "float32", False, None, True).parameters()
    expected = 2.0 * sum(float(p.detach().double().pow(2).sum()) for p in weights) ** 0.5
    assert norms[cells["base"]["cell_id"]] == expected and norms[cells["sft"]["cell_id"]] != expected
    assert json.loads(cells["sft"]["config"])["study"]["norm"] == {"scale": 2.0}

    # the config asks for it by its section: without it the cells neither run it nor carry it in their ids
    raw = yaml.safe_load(path.read_text())
    parsed = parse_config(raw, base_dir=tmp_path)
    plain = parse_config({k: v for k, v in raw.items() if k != "norm"}, base_dir=tmp_path)
    rescaled = parse_config({**raw, "norm": {"scale": 3.0}}, base_dir=tmp_path)
    assert [m.name for m in measurements.asked(parsed)] == ["norm"] and measurements.asked(plain) == []
    k = STUDIES.get("k")
    ids = {name: set(cell_ids(c, k, k.load_data(c), {"m": base}).values()) for name, c in
           [("parsed", parsed), ("plain", plain), ("rescaled", rescaled)]}
    assert ids["parsed"] == {r["cell_id"] for r in cells.values()}
    assert not ids["parsed"] & ids["plain"] and not ids["parsed"] & ids["rescaled"]

    # the study's own results and a cell's headline leave its rows out
    results = Results(store, "toy")
    assert results.metrics == ["contains"] and {c.domain for c in results.conditions} == {"id", "ood"}
    assert set(headline(store, cells["sft"]["cell_id"])) == {"id", "ood"}

    # the report, from the store alone in a fresh process: the study's tables have no norm rows
    out = subprocess.run([sys.executable, "-m", "flows.cli", "report", str(tmp_path / "results"), "--out",
                          str(tmp_path / "report")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "accuracy (%)" in out.stdout and not {"norm", "l2"} & set(out.stdout.split())
