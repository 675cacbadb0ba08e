"""Paper scale at a reduced size: benchmarks/bench_scale.py's synthetic store of configs/paper-k.yaml's plan, a
sixteenth of it (about 260 cells), through status, compaction, the report, one cell's results, the SQL join, retry
planning and validate, so the paths the benchmark measures keep working between its runs."""

import csv
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_scale  # noqa: E402

from flows.cli import main  # noqa: E402
from ftscope import datasets  # noqa: E402
from ftscope.plan import to_retry  # noqa: E402
from ftscope.store import Store  # noqa: E402

JOIN = ("SELECT c.model, c.method, c.level, c.n, count(*), sum(m.total) FROM metrics m JOIN cells c USING (cell_id) "
        "WHERE m.domain = 'id' AND m.slice = 'all' GROUP BY ALL ORDER BY ALL")


def test_a_sixteenth_of_the_paper_plan_through_every_everyday_command(tmp_path, capsys):
    (tmp_path / "eq").mkdir()
    bench_scale.entityquestions(tmp_path / "eq", datasets.get("entityquestions"), test_per_relation=8)
    for model in bench_scale.LAYERS:
        bench_scale.tiny_checkpoint(tmp_path / "models" / model)
    run, results = tmp_path / "run", str(tmp_path / "results")
    run.mkdir()
    info = bench_scale.build(run, results, tmp_path, 1 / 16, {})
    assert 250 <= info["cells"] <= 270  # 4,145 / 16

    assert main(["status", results]) == 0
    assert f"{info['cells']} done, 0 failed, 0 missing" in capsys.readouterr().out

    before = Store(results).sql(JOIN).fetchall()
    assert sum(r[4] for r in before) == info["cells"]  # one id/all metric row per cell
    files = len(list(Path(results, "scores").glob("*.parquet")))
    assert files >= info["cells"]
    assert main(["compact", results]) == 0
    assert len(list(Path(results, "scores").glob("*.parquet"))) < files / 10
    assert Store(results).sql(JOIN).fetchall() == before  # the same numbers from the merged files

    readme = tmp_path / "README.md"
    readme.write_text("<!-- findings:paper-k -->\n<!-- /findings:paper-k -->\n")
    assert main(["report", results, "--out", str(tmp_path / "report"), "--readme", str(readme)]) == 0
    assert "SYNTHETIC STORE, NOT RESULTS" in capsys.readouterr().out
    assert "SYNTHETIC STORE, NOT RESULTS" in (tmp_path / "report" / "report.html").read_text()
    assert "SYNTHETIC STORE, NOT RESULTS" in readme.read_text()

    one = tmp_path / "one.csv"
    assert main(["results", results, "--table", "scores", "--where", f"cell_id = '{info['first']}'", "--format", "csv",
                 "--output", str(one)]) == 0
    rows = list(csv.DictReader(one.open()))
    assert rows and {r["cell_id"] for r in rows} == {info["first"]}

    store = Store(results)
    assert to_retry(store, "paper-k")[1] == []  # every planned cell of this size is done
    failed = {**store.latest_cells()[info["first"]], "status": "failed", "error": "synthetic failure",
              "finished_at": datetime.now(timezone.utc) + timedelta(hours=1)}
    store.write("cells", f"{info['first']}-failed", [failed])  # a later attempt of one cell that failed
    label = next(r["label"] for r in store.read("plan").to_pylist() if r["cell_id"] == info["first"])
    assert to_retry(Store(results), "paper-k")[1] == [label]  # only it is submitted again
    assert main(["validate", str(run / "paper-k.yaml"), "--results", results]) == 0


def test_a_large_sweep_sends_its_cells_table_about_a_hundred_times_by_model_and_method(prefect_harness, tmp_path):
    """At paper scale the Prefect UI gets one summary table (a row per model and method), sent again each 1% of
    the cells: not a 4,145-row table stored again at every cell."""
    from types import SimpleNamespace

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Failed

    from tasks.artifacts import CellProgress

    cfg = SimpleNamespace(study="table-scale", results_dir=str(tmp_path / "results"))
    cells = [SimpleNamespace(cid=f"c{i}", cell=SimpleNamespace(label=f"m{i % 2}/n={i}/{'sft' if i % 3 else 'lora'}",
                                                               model=f"m{i % 2}", method="sft" if i % 3 else "lora"))
             for i in range(450)]

    @flow
    def sweep():
        progress = CellProgress(cfg, len(cells), 0)
        for i, p in enumerate(cells):
            progress.finished(p, Failed(message="x") if i == 7 else Completed())

    sweep()
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:  # every version (the session's server holds other tests' too)
        tables = sorted(client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["table-scale-cells"])),
                                              limit=200), key=lambda a: a.created)
    assert 90 <= len(tables) <= 101  # every 5 cells (1% of 450, rounded up) and at the end
    import json
    rows = json.loads(tables[-1].data)
    assert sorted(r["model, method"] for r in rows) == ["m0, lora", "m0, sft", "m1, lora", "m1, sft"]
    assert sum(r["done"] for r in rows) == 449 and sum(r["not done"] for r in rows) == 1


def test_the_orchestration_benchmark_counts_a_wait_for_a_free_worker_as_queueing_not_overhead():
    import bench_orchestration

    runs = [  # two workers: jobs 0 and 1 run at once, job 2 waits for job 0's end (t=10) and is taken at t=11
        {"job": 0, "created": 0.0, "pending": 0.5, "start": 1.0, "end": 10.0, "needs": set()},
        {"job": 1, "created": 0.0, "pending": 0.5, "start": 2.0, "end": 20.0, "needs": set()},
        {"job": 2, "created": 0.0, "pending": 11.0, "start": 13.0, "end": 15.0, "needs": set()},
        {"job": 3, "created": 16.0, "pending": 16.5, "start": 17.0, "end": 18.0, "needs": {2}},
    ]
    lat = bench_orchestration.overheads(runs, workers=2)
    assert lat["pickup"] == [0.5, 0.5, 1.0, 0.5] and lat["start"] == [0.5, 1.5, 2.0, 0.5] and lat["created"] == [1.0]
