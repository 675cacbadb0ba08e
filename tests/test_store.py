from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ftscope.store import SCHEMA_VERSION, SCHEMAS, Store


def _metric(cid, acc):
    return {"cell_id": cid, "task": "cbqa", "dataset": "d", "domain": "id", "slice": "all", "prompt_map": 0, "shots": 0,
            "metric": "contains", "n": 10, "total": acc * 10, "value": acc}


def _cell(store, cid, status, second=0, axes='{"level": "0", "n": 8}'):
    base = {k: None for k in SCHEMAS["cells"].names if k != "schema_version"}
    t = datetime(2026, 1, 1, 0, 0, second, tzinfo=timezone.utc)
    store.write("cells", f"{cid}-{second}", [{**base, "cell_id": cid, "status": status, "finished_at": t,
                                              "axes": axes, "params": "{}", "study": "s"}])


def test_write_is_atomic_and_readable_with_pyarrow_and_duckdb(tmp_path):
    store = Store(str(tmp_path / "res"))
    store.write("metrics", "a", [_metric("a", 0.5)])
    store.write("metrics", "b", [_metric("b", 0.7)])
    _cell(store, "a", "done")
    _cell(store, "b", "done")
    # temporaries are written outside the tables, so a crashed writer's half file is never read
    assert not list((tmp_path / "res" / "metrics").glob("*.tmp")) and (tmp_path / "res" / ".staging").is_dir()
    table = store.read("metrics")
    assert table.schema == SCHEMAS["metrics"]
    assert sorted(table["cell_id"].to_pylist()) == ["a", "b"]
    assert set(table["schema_version"].to_pylist()) == {SCHEMA_VERSION}
    assert store.sql("SELECT round(avg(value), 2) FROM metrics").fetchall()[0][0] == 0.6
    assert store.exists("metrics", "a") and not store.exists("metrics", "c")


def test_readers_see_only_rows_of_cells_whose_latest_attempt_is_done(tmp_path):
    store = Store(str(tmp_path))
    store.write("metrics", "a", [_metric("a", 0.5)])
    store.write("metrics", "orphan", [_metric("orphan", 0.9)])  # killed before its cells row
    store.write("metrics", "f", [_metric("f", 0.1)])
    _cell(store, "a", "done")
    _cell(store, "f", "failed")
    assert store.read("metrics").num_rows == 3
    assert store.read("metrics", done_only=True)["cell_id"].to_pylist() == ["a"]
    assert store.sql("SELECT cell_id FROM metrics").fetchall() == [("a",)]
    # the cells view flattens the axes into typed columns
    assert store.sql("SELECT level, n FROM cells WHERE cell_id = 'a'").fetchall() == [("0", 8)]


def test_empty_table_has_schema(tmp_path):
    t = Store(str(tmp_path)).read("cells")
    assert t.num_rows == 0 and t.schema == SCHEMAS["cells"]


def test_rows_must_match_schema(tmp_path):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError)):
        Store(str(tmp_path)).write("metrics", "x", [{**_metric("x", 0.5), "value": "high"}])
    with pytest.raises(KeyError, match="unknown table"):
        Store(str(tmp_path)).write("nope", "x", [])


def test_latest_cells_picks_newest_attempt(tmp_path):
    store = Store(str(tmp_path))
    _cell(store, "c1", "failed", 0)
    _cell(store, "c1", "done", 1)
    assert store.latest_cells()["c1"]["status"] == "done"


def test_an_object_store_gets_one_upload_per_file_and_no_staging(tmp_path):
    """Any fsspec URL (here fsspec's in-memory filesystem, standing in for s3:// or gs://)."""
    import fsspec

    store = Store("memory://ftscope-test/results")
    assert not store.local
    store.write("metrics", "a", [_metric("a", 0.5)])
    _cell(store, "a", "done")
    mem = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[1] for p in mem.find("/ftscope-test/results")) == ["a-0.parquet", "a.parquet"]
    assert store.sql("SELECT value FROM metrics").fetchall() == [(0.5,)]
    assert store.sweep() == []


def _many(store, n=12):
    """n cells: each with its metrics and scores, an attempt row (the last one failed, then done)."""
    for i in range(n):
        cid = f"c{i:02d}"
        store.write("metrics", cid, [_metric(cid, i / n)])
        store.write("scores", cid, [{"cell_id": cid, "task": "cbqa", "dataset": "d", "domain": "id", "slice": "all",
                                     "prompt_map": 0, "shots": 0, "metric": "contains", "item_id": f"i{j}",
                                     "value": float((i + j) % 2), "prediction": None} for j in range(5)])
        _cell(store, cid, "done", 1)
    _cell(store, "c00", "failed", 0)


def _snapshot(store):
    s = Store(store.uri)
    return (sorted(map(str, s.read("metrics", done_only=True).to_pylist())),
            sorted(map(str, s.read("scores", done_only=True, cells=["c03", "c07"]).to_pylist())),
            sorted(s.keys("metrics")), s.read_key("metrics", "c05").to_pylist(), len(s.attempts("c00")),
            sorted(s.latest_cells()), s.sql("SELECT count(*), round(sum(value), 6) FROM scores").fetchall(),
            s.sql("SELECT cell_id, value FROM metrics ORDER BY cell_id").fetchall())


def test_compaction_keeps_every_read_and_a_rewrite_wins_over_it(tmp_path):
    store = Store(str(tmp_path))
    _many(store)
    before = _snapshot(store)
    lines = store.compact()
    assert any(line.startswith("scores: 12 files") for line in lines), lines
    assert [p.name for p in (tmp_path / "metrics").glob("*.parquet")][0].startswith("~compacted-")
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == 1 and _snapshot(store) == before
    Store(str(tmp_path)).write("metrics", "c05", [_metric("c05", 0.99)])  # the cell re-ran after the compaction
    assert Store(str(tmp_path)).read_key("metrics", "c05")["value"].to_pylist() == [0.99]
    assert sorted(Store(str(tmp_path)).read("metrics")["value"].to_pylist()).count(0.99) == 1
    Store(str(tmp_path)).compact()  # the newer compaction holds the new value; nothing doubles
    assert Store(str(tmp_path)).read_key("metrics", "c05")["value"].to_pylist() == [0.99]
    assert Store(str(tmp_path)).read("metrics").num_rows == 12


def test_a_compaction_killed_midway_loses_and_doubles_nothing(tmp_path):
    import subprocess
    import sys

    store = Store(str(tmp_path))
    _many(store)
    before = _snapshot(store)
    for point in ("compact:scores:keys", "compact:scores", "compact:scores:written"):
        p = subprocess.run([sys.executable, "-c", f"from ftscope.store import Store; Store({str(tmp_path)!r}).compact()"],
                           env={**__import__("os").environ, "FTSCOPE_KILL_AT": point}, capture_output=True)
        assert p.returncode == -9, p.stderr
        assert _snapshot(store) == before, point  # killed before, during or after writing the merged file
    assert Store(str(tmp_path)).compact() and _snapshot(store) == before
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == 2  # the killed run's merged file, and the last one


def test_a_damaged_compacted_file_marks_every_cell_it_held(tmp_path):
    store = Store(str(tmp_path))
    _many(store, 4)
    store.compact(["scores"])
    (merged,) = (tmp_path / "scores").glob("~compacted-*.parquet")
    merged.write_bytes(merged.read_bytes()[:200])  # truncated: no footer
    store = Store(str(tmp_path))
    assert list(store.damaged(["scores"])) == [str(merged)]
    lines = store.repair()
    assert len(lines) == 1 and "4 cells are marked damaged" in lines[0]
    assert {r["status"] for r in Store(str(tmp_path)).latest_cells().values()} == {"damaged"}


def test_a_store_sees_other_writers_and_a_snapshot_keeps_one_view(tmp_path):
    live, snapshot, other = Store(str(tmp_path)), Store(str(tmp_path), snapshot=True), Store(str(tmp_path))
    _many(other, 4)
    assert sorted(live.latest_cells()) == sorted(snapshot.latest_cells()) == ["c00", "c01", "c02", "c03"]
    assert live.read("metrics").num_rows == snapshot.read("metrics").num_rows == 4
    _cell(other, "c09", "done", 2)  # another process adds a cell, then compacts the store
    other.write("metrics", "c09", [_metric("c09", 0.5)])
    assert other.compact(min_files=100) == []  # fewer small files than asked for: left as they are
    other.compact()
    assert "c09" in live.latest_cells() and live.read("metrics", done_only=True).num_rows == 5
    assert "c09" not in snapshot.latest_cells()  # its first listing of cells
    assert snapshot.read("metrics").num_rows == 5  # the files it had listed were merged: it lists again, once
    assert not (tmp_path / ".staging").exists() or not list((tmp_path / ".staging").iterdir())  # no lock left there


def test_a_few_cells_of_a_compacted_file_read_only_their_row_groups(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import ftscope.store

    store = Store(str(tmp_path))
    _many(store)
    cells = ["c03", "c04", "c09"]
    before = sorted(map(str, store.read("scores", cells=cells).to_pylist()))
    monkeypatch.setattr(ftscope.store, "ROW_GROUP", 7)  # 60 rows in 9 row groups, a cell's 5 rows across two at most
    store.compact(["scores"])
    read = []
    real = ftscope.store.key_row_groups
    monkeypatch.setattr(ftscope.store, "key_row_groups", lambda frag, keys: read.append(real(frag, keys)) or read[-1])
    s = Store(str(tmp_path))
    assert sorted(map(str, s.read("scores", cells=cells).to_pylist())) == before
    assert read and len(read[0]) <= 5 < pq.ParquetFile(next((tmp_path / "scores").glob("*.parquet"))).num_row_groups
    assert s.read_key("scores", "c09").num_rows == 5


def test_a_snapshot_reads_a_file_rewritten_since_its_listing(tmp_path):
    store = Store(str(tmp_path))
    _many(store, 3)
    snap = Store(str(tmp_path), snapshot=True)
    assert snap.read("metrics").num_rows == 3  # listed, with each file's size
    store.write("metrics", "c01", [_metric("c01", 0.5), _metric("c01", 0.25)])  # another size now
    assert sorted(snap.read("metrics")["value"].to_pylist()) == [0.0, 0.25, 0.5, 0.6666666666666666]


def test_every_table_is_its_record_type(tmp_path):
    """A row made as its record (ftscope/records.py) is written and read back as the same record, for every table:
    the schemas are the records' fields, in order, with their types."""
    from dataclasses import fields

    from ftscope.records import TABLES, as_row

    samples = {str: "x", int: 7, float: 0.25, bool: True, datetime: datetime(2026, 1, 1, tzinfo=timezone.utc)}
    store = Store(str(tmp_path / "res"))
    for table, record in TABLES.items():
        assert SCHEMAS[table].names == [f.name for f in fields(record)] + ["schema_version"]
        kinds = {f.name: next(t for t in samples if t in getattr(f.type, "__args__", (f.type,))) for f in fields(record)}
        made = record(**{name: samples[kind] for name, kind in kinds.items()})
        store.write(table, "k", [as_row(made)])
        back = store.read(table).drop(["schema_version"]).to_pylist()
        assert [record(**r) for r in back] == [made], table
