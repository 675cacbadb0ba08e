"""Levels are known only after mastery: a grid point the data cannot fill is recorded as not run, with why, and
every other cell runs; `validate` on a store where mastery is scored says which cells will not run."""

from pathlib import Path

import yaml

from flows.study import study
from ftscope.report.render import report_text
from ftscope.report.status import status_table
from ftscope.store import Store
from ftscope.validate import validate


def test_cells_the_data_cannot_fill_are_recorded_not_run_and_the_others_run(smoke_done, tmp_path):
    path = smoke_done(tmp_path)
    raw = yaml.safe_load(Path(path).read_text())
    raw["grid"]["sample_counts"] = [8, 16, 5000]  # 5000: more ID training items than any level holds
    Path(path).write_text(yaml.safe_dump(raw))
    _, problems, notes = validate(path)
    assert not problems
    assert any("will be recorded as not run: mastery level 0" in n and "n=5000 needs 5000" in n for n in notes), notes
    assert study(config_path=path, return_state=True).is_completed()
    store = Store(raw["results_dir"])
    table, counts = status_table(store, raw["study"])
    assert counts["not_run"] == 2 and counts["done"] == 4, table
    assert "not_run" in table and "n=5000 needs 5000" in table
    text = report_text(store, raw["study"])
    assert "2 cell(s) not run: mastery level" in text or "1 cell(s) not run: mastery level" in text
    assert study(config_path=path, return_state=True).is_completed()  # again: nothing new is recorded or run
    assert len([r for r in store.read("cells").to_pylist() if r["status"] == "not_run"]) == 2
