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
