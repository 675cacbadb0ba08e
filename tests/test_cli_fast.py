"""Fast to start, visible while it works: each command imports only what it uses (checked from sys.modules,
not timed), `--version` names the stack, a re-run with nothing to do reuses the report without a server, and
a running cell's phase and percentage show in `status` and in the Prefect UI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FTSCOPE = str(Path(sys.executable).parent / "ftscope")
HEAVY = {"torch", "transformers", "peft", "deepspeed", "vllm", "matplotlib", "prefect", "datasets", "scipy"}
MODEL_CODE = {"transformers", "peft", "deepspeed", "vllm", "matplotlib", "prefect", "datasets"}  # torch itself is fine


def _imported_by(*argv) -> set[str]:
    """The top-level packages in sys.modules after `ftscope ARGV` ran in a fresh interpreter."""
    code = ("import sys; from flows.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT)
    line = next(x for x in r.stdout.splitlines() if x.startswith("MODULES"))
    return set(line.split()[1:])


def test_each_command_imports_only_what_it_uses(methods_store, tmp_path):
    _, results = methods_store
    # the demo's config with empty directories, as on a fresh machine (with its base models built, validate reads
    # their tokenizers to measure the prompts, and so imports transformers)
    raw = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    raw.update(results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"),
               cache_dir=str(tmp_path / "cache"))
    demo = tmp_path / "demo.yaml"
    demo.write_text(yaml.safe_dump(raw))
    assert not _imported_by("--help") & (HEAVY | {"pyarrow", "duckdb", "pydantic", "ftscope"})
    assert not _imported_by("--version") & (HEAVY | {"pyarrow", "ftscope"})
    assert not _imported_by("validate", str(demo)) & MODEL_CODE
    assert not _imported_by("status", results) & HEAVY
    assert not _imported_by("results", results, "--table", "cells") & HEAVY


def test_version_names_the_stack():
    r = subprocess.run([FTSCOPE, "--version"], capture_output=True, text=True)
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert r.returncode == 0 and names[:4] == ["ftscope", "torch", "transformers", "prefect"]


def test_a_rerun_with_nothing_to_do_reuses_the_report_without_a_server(smoke_done, tmp_path):
    path = smoke_done(tmp_path)  # a store the smoke study ran to the end in
    page = tmp_path / "results" / "report" / "report.html"
    written = page.stat().st_mtime_ns

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # a server would have to be started
    r = subprocess.run([FTSCOPE, "run", str(path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing to do: every planned cell is done and the store is unchanged" in r.stdout
    assert "accuracy (%) on id_test" in r.stdout and "Prefect server" not in r.stderr
    assert page.stat().st_mtime_ns == written  # the report was reused, not rebuilt

    (tmp_path / "results" / "report" / "store-state").write_text("stale")  # as if the store had changed
    r = subprocess.run([FTSCOPE, "run", str(path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and "the report was rebuilt" in r.stdout and "Prefect server" not in r.stderr
    assert page.stat().st_mtime_ns != written


def test_a_running_cell_shows_its_phase_and_percentage_in_status(tmp_path):
    """While a cell holds its claim, `status` shows where it runs and how far along it is, from the progress
    file its Progress writes."""
    from datetime import datetime, timezone

    from ftscope.locks import exclusive
    from ftscope.progress import Progress, file_sink, progress_file
    from ftscope.store import Store

    store = Store(str(tmp_path / "results"))
    store.write("plan", "s", [{"cell_id": "c1", "study": "s", "kind": "k", "label": "m/level=0/n=8/sft/s0",
                               "model": "m", "method": "sft", "variant": "sft", "axes": "{}", "seed": 0}])
    store.write("runs", "r1-running", [{"run_id": "r1", "study": "s", "kind": "k", "status": "running",
                                        "config": yaml.safe_dump({"artifacts_dir": str(tmp_path / "artifacts")}),
                                        "started_at": datetime.now(timezone.utc), "pid": os.getpid()}])
    claim = tmp_path / "artifacts" / "claims" / "c1.lock"
    with exclusive(claim):
        progress = Progress("m/level=0/n=8/sft/s0", sinks=(file_sink(progress_file(claim)),))
        progress.phase("train", total=48, unit="steps")
        progress.update(12, epoch=1.0, loss=3.25)
        progress._send(force=True)
        r = subprocess.run([FTSCOPE, "status", str(tmp_path / "results")], capture_output=True, text=True, cwd=ROOT)
    assert f"running c1  m/level=0/n=8/sft/s0  on {os.uname().nodename} pid {os.getpid()}, train 25% " \
           f"(12/48 steps, epoch 1, loss 3.25)" in r.stdout, r.stdout
    assert "1 running" in r.stdout
    state = json.loads(progress_file(claim).read_text())
    assert state["phase"] == "train" and state["percent"] == 25.0


def test_a_cell_reports_its_phases_to_the_prefect_ui_and_one_log_line_each(smoke_base, prefect_harness, caplog,
                                                                           tmp_path):
    """A cell task keeps a progress artifact up to date (build, train, kl, evaluate, params, done) and logs one
    line per phase, never one per training step."""
    import logging

    from prefect.client.orchestration import get_client

    from ftscope.cell import ModelContext
    from ftscope.plan import _planned
    from ftscope.studies import k
    from tasks.study import cell_task

    cfg, data, base, levels = smoke_base
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 4}), "results_dir": str(tmp_path / "r"),
                                 "artifacts_dir": str(tmp_path / "a")})  # the session's smoke store stays as it is
    planned = next(p for p in _planned(cfg, k.STUDY, data, {cfg.models[0].name: base}) if dict(p.cell.axes)["n"] == 16)
    ctx = ModelContext(data, base, base, levels)
    with caplog.at_level(logging.INFO, logger="ftscope.progress"):
        cell_task(cfg, planned, ctx, planned.cell.label)
    phases = [r.getMessage() for r in caplog.records if r.name == "ftscope.progress"]
    assert [m.split("] ", 1)[1].split(":")[0].split(" done")[0] for m in phases if " done in " not in m] == \
        ["build", "train", "kl", "evaluate", "params"]
    assert sum("] train" in m for m in phases) == 2  # its start and its end: none per step
    with get_client(sync_client=True) as client:
        arts = [a for a in client.read_artifacts() if a.key == f"cell-{planned.cid}"]
    assert arts and all(a.type == "progress" for a in arts) and float(arts[-1].data) == 100.0


def test_report_refuses_a_missing_readme_before_reading_the_store(tmp_path):
    r = subprocess.run([FTSCOPE, "report", str(tmp_path / "no-store"), "--readme", str(tmp_path / "README.md")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr and "findings:STUDY" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
