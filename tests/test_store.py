from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ftscope.store import SCHEMA_VERSION, SCHEMAS, Store


def _metric(cid, acc):
    return {"cell_id": cid, "split": "id_test", "test_level": -1, "n_items": 10, "n_correct": int(acc * 10),
            "accuracy": acc}


def test_write_is_atomic_and_readable_with_pyarrow_and_duckdb(tmp_path):
    store = Store(str(tmp_path / "res"))
    store.write("metrics", "a", [_metric("a", 0.5)])
    store.write("metrics", "b", [_metric("b", 0.7)])
    # a crashed writer's temp file is never read as data
    (tmp_path / "res" / "metrics" / ".c.123.parquet.tmp").write_bytes(b"half a file")
    table = store.read("metrics")
    assert table.schema == SCHEMAS["metrics"]
    assert sorted(table["cell_id"].to_pylist()) == ["a", "b"]
    assert set(table["schema_version"].to_pylist()) == {SCHEMA_VERSION}
    assert store.sql("SELECT round(avg(accuracy), 2) FROM metrics").fetchall()[0][0] == 0.6
    assert store.exists("metrics", "a") and not store.exists("metrics", "c")


def test_empty_table_has_schema(tmp_path):
    t = Store(str(tmp_path)).read("cells")
    assert t.num_rows == 0 and t.schema == SCHEMAS["cells"]


def test_rows_must_match_schema(tmp_path):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError)):
        Store(str(tmp_path)).write("metrics", "x", [{**_metric("x", 0.5), "accuracy": "high"}])
    with pytest.raises(KeyError, match="unknown table"):
        Store(str(tmp_path)).write("nope", "x", [])


def test_latest_cells_picks_newest_attempt(tmp_path):
    store = Store(str(tmp_path))
    base = {k: None for k in SCHEMAS["cells"].names if k != "schema_version"}
    for i, status in enumerate(["failed", "done"]):
        t = datetime(2026, 1, 1, 0, 0, i, tzinfo=timezone.utc)
        store.write("cells", f"c1-{i}", [{**base, "cell_id": "c1", "status": status, "finished_at": t}])
    assert store.latest_cells()["c1"]["status"] == "done"
