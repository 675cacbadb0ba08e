"""Orchestration at paper scale, measured: the study flow of configs/paper-k.yaml (4,145 cells in 365 jobs) with
`dispatch: deployments`, against a real Prefect server on PostgreSQL, with 16 process workers for the jobs (one run
each, as 16 one-GPU nodes would) and one for the study flow, then its pages rendered in headless Chromium.

Everything but the cells is real: `ftscope submit`, the study, prepare and deployment runs of prefect.yaml,
the work pool, the workers, the server's automations. Real cells would take days here, so the cell deployment of
this benchmark is `sleep_cell` below: a flow registered by this benchmark on its own throwaway server (a user's
config cannot reach it), that sleeps `--sleep` seconds per cell and writes the cell's synthetic rows (its `cells`
row, done, and its accuracy per domain) with the store's own writer. The data and models are bench_scale.py's:
a synthetic EntityQuestions of the paper's size and tiny checkpoints under the paper's names; mastery is written
before the study starts, so each model's preparation reads it. The `runs` table marks the store synthetic.

Measured:
- per job, the overhead from the moment it could run (the jobs it needs done, and one of the workers free) to
  its run Running; and how long the study took to create the run of a job once the jobs it needs were done;
- the server's CPU (`prefect server` and PostgreSQL, every process) and its API calls (its access log), per job;
- the study flow's memory (its process's peak resident set);
- the time for the study run's page and the runs list to render in headless Chromium.

Usage: python benchmarks/bench_orchestration.py [--models 5] [--workers 16] [--sleep 1] [--keep DIR]
(writes its table to docs/benchmarks.md; --models 1 is a fifth of the plan)
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from prefect import flow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SLEEP_ENV = "FTSCOPE_BENCH_SLEEP_S"  # set on this benchmark's workers only


@flow(name="cell", flow_run_name="{label}")
def sleep_cell(config: dict, cells: list[dict], label: str = "cell"):
    """This benchmark's stand-in for flows.cell.cell (same parameters): per cell, sleep, then write its rows."""
    import hashlib

    from flows.cell import _planned
    from ftscope.cell import _finish, attempt_row
    from ftscope.config import parse_config
    from ftscope.store import Store
    from ftscope.studies import STUDIES
    from tasks.dispatch import mark_started

    cfg = parse_config(config)
    mark_started(cfg)
    store, study = Store(cfg.results_dir), STUDIES.get(cfg.kind)
    for p in map(_planned, cells):
        t0 = time.monotonic()
        time.sleep(float(os.environ.get(SLEEP_ENV, "1")))
        acc = int(hashlib.sha256(p.cid.encode()).hexdigest()[:4], 16) / 65535
        store.write("metrics", p.cid, [{"cell_id": p.cid, "task": "cbqa", "dataset": "entityquestions", "domain": d,
                                        "slice": "all", "prompt_map": 0, "shots": 0, "metric": "contains", "n": 2000,
                                        "total": round(2000 * acc * f), "value": round(2000 * acc * f) / 2000}
                                       for d, f in (("id", 1.0), ("ood", 0.8))])
        _finish(store, {**attempt_row(cfg, study, p.cell, p.cid, p.parent_id), "status": "done", "error": None}, t0)
    return {p["cell_id"]: "done" for p in cells}


# -- the study's inputs and config --------------------------------------------------------------------------------

def prepare(root: Path, models: int) -> tuple[Path, list]:
    """Inputs, config and mastery of the benchmark's study; (config path, its planned cells)."""
    import bench_scale
    import yaml

    from ftscope import datasets
    from ftscope.config import load_config
    from ftscope.plan import plan_cells
    from ftscope.runs import RunRecord
    from ftscope.store import Store
    from ftscope.studies import k

    inputs = root / "inputs"
    (inputs / "eq").mkdir(parents=True)
    bench_scale.entityquestions(inputs / "eq", datasets.get("entityquestions"))
    for m in yaml.safe_load((ROOT / "configs/paper-k.yaml").read_text())["models"][:models]:
        bench_scale.tiny_checkpoint(inputs / "models" / m["name"])
    path = bench_scale.paper_config(root, str(root / "results"), inputs)
    raw = yaml.safe_load(path.read_text())
    raw["models"] = [{k: v for k, v in m.items() if k not in ("gpus", "processes", "deepspeed", "work_queue", "job_variables")}
                     for m in raw["models"][:models]]  # the CPU's one process: the nodes here have no GPUs
    raw.update(study="orchestration", dispatch="deployments",
               cluster={"deployment": "cell/bench-sleep", "poll_s": 2})
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(str(path))
    data = k.STUDY.load_data(cfg)
    bases = {m.name: m.path for m in cfg.models}
    store = Store(cfg.results_dir)
    planned = plan_cells(cfg, k.STUDY, data, bases, store)
    bench_scale.Writer(cfg, k.STUDY, data, store, planned).mastery(data, bases)
    RunRecord(cfg, store, None, "synthetic-" + cfg.study).finish(
        "synthetic", "written by benchmarks/bench_orchestration.py: sleeping cells with made-up numbers, not results")
    return path, planned


def deploy(root: Path, env: dict) -> None:
    """The work pool, prefect.yaml's deployments and this benchmark's cell deployment."""
    prefect = str(BIN / "prefect")
    (root / "bench.yaml").write_text(
        "name: ftscope-bench\nprefect-version: 3.9.1\npull: []\ndeployments:\n  - name: bench-sleep\n"
        "    entrypoint: benchmarks.bench_orchestration:sleep_cell\n    work_pool: {name: ftscope}\n")
    for args in (["--no-prompt", "work-pool", "create", "ftscope", "--type", "process", "--overwrite"],
                 ["--no-prompt", "deploy", "--all"],
                 ["--no-prompt", "deploy", "--all", "--prefect-file", str(root / "bench.yaml")]):
        r = subprocess.run([prefect, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if r.returncode:
            raise RuntimeError(f"prefect {' '.join(args)}: {r.stdout[-1500:]}{r.stderr[-1500:]}")


def start_workers(root: Path, env: dict, n: int, sleep_s: float) -> list[subprocess.Popen]:
    """`n` workers for the jobs (the pool's default queue) and one for the study flow (queue `studies`), each its
    own process group taking one run at a time, as nodes would."""
    env = {**env, SLEEP_ENV: str(sleep_s), "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "ftscope", "--type", "process",
                              "--limit", "1", "--name", name, "--work-queue", queue], env=env, cwd=ROOT,
                             stdout=open(root / f"worker-{name}.log", "w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
            for name, queue in [("study", "studies")] + [(f"node-{i}", "default") for i in range(n)]]


# -- what is measured while it runs ----------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Every second: the CPU time of the server's processes (prefect and PostgreSQL, by pid, so exited ones
    keep their last reading) and the resident set of the study flow's process (found by its run id)."""

    def __init__(self, server_pid: int):
        super().__init__(daemon=True)
        self.server_pid, self.cpu, self.base, self.study_id, self.rss, self.stop = server_pid, {}, None, None, 0, False

    def server_cpu(self) -> float:
        return sum(self.cpu.values())

    def run(self):
        import psutil

        study_proc = None
        while not self.stop:
            procs = []
            try:
                procs = [psutil.Process(self.server_pid)] + psutil.Process(self.server_pid).children(recursive=True)
            except psutil.Error:
                pass
            procs += [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]
            for p in procs:
                try:
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            if study_proc is None and self.study_id:
                for p in psutil.process_iter(["name"]):
                    try:
                        if p.environ().get("PREFECT__FLOW_RUN_ID") == self.study_id:
                            study_proc = p
                    except psutil.Error:
                        pass
            if study_proc is not None:
                try:
                    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{study_proc.pid}/status").read_text())
                    self.rss = max(self.rss, int(hwm.group(1)) * 1024)
                except (OSError, AttributeError):
                    pass
            time.sleep(1)


def job_runs(server: dict, planned: list) -> list[dict]:
    """Each job (grouped as the study groups its plan) with its run's times: created, Pending, Running, ended; and
    the jobs it needs."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
    from servers import server_client

    from ftscope import jobs

    key, parent = (lambda p: p.cid), (lambda p: p.parent_id)
    grouped = jobs.group(planned, key, parent)
    job_of = {p.cid: n for n, job in enumerate(grouped) for p in job}
    runs, offset = [], 0
    with server_client(server) as c:
        while page := c.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["bench-sleep"])),
                                       flow_run_filter=FlowRunFilter(), limit=200, offset=offset):
            runs += page
            offset += len(page)
    out = {}
    with server_client(server) as c:
        for r in runs:
            cid = next(t[5:] for t in r.tags if t.startswith("cell:"))
            n = job_of[cid]
            if n in out and r.created.timestamp() < out[n]["created"]:
                continue  # a job dispatched again: its last run
            pending = [s.timestamp.timestamp() for s in c.read_flow_run_states(r.id) if s.type.value == "PENDING"]
            out[n] = {"job": n, "created": r.created.timestamp(), "pending": min(pending, default=None),
                      "start": r.start_time.timestamp() if r.start_time else None,
                      "end": r.end_time.timestamp() if r.end_time else None, "state": r.state.name if r.state else "?",
                      "needs": {job_of[k] for k in jobs.needs(grouped[n], key, parent)}}
    return sorted(out.values(), key=lambda j: j["job"])


def overheads(runs: list[dict], workers: int) -> dict[str, list[float]]:
    """Per job: `pickup`, from when it could run to a worker taking it (Pending); `start`, from Pending to Running
    (the worker starts the run's process, which loads the flow); `created`, per job that needs others, from their
    end to its run's creation (the study noticing). A job could run once the jobs it needs had ended and a worker
    was free: jobs are given, in the order they were taken, to the worker free the soonest (all free at the first
    run's creation), which is free again at the job's end."""
    import heapq

    by = {j["job"]: j for j in runs}
    ran = sorted((j for j in runs if j["pending"] and j["start"] and j["end"]), key=lambda j: j["pending"])
    free = [min((j["created"] for j in runs), default=0.0)] * workers
    out = {"pickup": [], "start": [], "created": []}
    for j in ran:
        ready = max([j["created"]] + [by[n]["end"] for n in j["needs"]])
        if j["needs"]:
            out["created"].append(j["created"] - max(by[n]["end"] for n in j["needs"]))
        out["pickup"].append(max(0.0, j["pending"] - max(ready, heapq.heappop(free))))
        heapq.heappush(free, j["end"])
        out["start"].append(j["start"] - j["pending"])
    return out


def spread(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):.1f} s, p90 {xs[int(0.9 * (len(xs) - 1))]:.1f} s, max {xs[-1]:.1f} s"


def workers_cpu(workers: list) -> float:
    """CPU seconds of the processes the workers started and waited for (the runs)."""
    import psutil

    total = 0.0
    for w in workers:
        try:
            for p in [psutil.Process(w.pid)] + psutil.Process(w.pid).children(recursive=True):
                t = p.cpu_times()
                total += t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def wait_final(server: dict, run_id: str):
    """The run's final state, polled every 5 s; a refused connection is retried (at 1,000s of runs the server's
    listen queue may be full for a moment)."""
    import httpx
    from servers import server_client

    refused = 0
    while True:
        try:
            with server_client(server) as c:
                while not (state := c.read_flow_run(run_id).state) or not state.is_final():
                    time.sleep(5)
                return state
        except httpx.TransportError as e:
            refused += 1
            print(f"the server did not answer ({refused}): {e!r} at {server['url']}", flush=True)
            time.sleep(5)


def render(ui: str, study_id: str, study: str, shots: Path) -> dict:
    """Seconds until the study run's page shows the run and its tabs, and the runs list its runs (headless
    Chromium, a fresh browser each); what the runs list says it holds."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        return {"ui": "headless Chromium is not installed (Debian: apt-get install chromium chromium-driver)"}
    out = {}
    for name, url, ready in (
            ("study run page", f"{ui}/runs/flow-run/{study_id}", lambda t: study in t and "Task Runs" in t),
            ("runs list", f"{ui}/runs", lambda t: re.search(r"[\d,]+\s+runs?\b", t) is not None)):
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
            opts.add_argument(flag)
        browser = webdriver.Chrome(service=Service(driver), options=opts)
        try:
            browser.set_window_size(1400, 1000)
            t0 = time.perf_counter()
            browser.get(url)
            text = lambda: browser.find_element(By.TAG_NAME, "body").text  # noqa: E731
            try:
                WebDriverWait(browser, 60, poll_frequency=0.1).until(lambda d: ready(text()))
                out[name] = time.perf_counter() - t0
            except TimeoutException:
                out[name] = None
            body = text()
            browser.save_screenshot(str(shots / f"{name.replace(' ', '-')}.png"))
            if name == "runs list" and (m := re.search(r"([\d,]+)\s+runs?\b", body)):
                out["runs listed"] = m.group(1)
        finally:
            browser.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5, help="models of paper-k.yaml to keep (5: the whole plan)")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds each cell sleeps")
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the server and the workers
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]
    from servers import start_prefect_server

    root = Path(args.keep or tempfile.mkdtemp(prefix="ftscope-bench-orchestration-"))
    root.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    config, planned = prepare(root, args.models)
    print(f"{len(planned)} cells planned; inputs in {time.perf_counter() - t0:.0f} s", flush=True)
    (root / "prefect").mkdir(exist_ok=True)
    server = start_prefect_server(root / "prefect", ui=True, log_level="INFO")
    env = {**server["env"], "FTSCOPE_HOME": str(root / "home"), "HF_HUB_OFFLINE": "1"}
    workers, sampler = [], Sampler(server["pid"])
    try:
        deploy(root, env)
        workers = start_workers(root, env, args.workers, args.sleep)
        sampler.start()
        time.sleep(3)
        cpu0, log0 = sampler.server_cpu(), (root / "prefect/server.log").stat().st_size
        t_submit = time.perf_counter()
        r = subprocess.run([str(BIN / "ftscope"), "submit", str(config)], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        if r.returncode:
            raise RuntimeError(f"ftscope submit: {r.stdout}{r.stderr}")
        link = next(line for line in r.stdout.splitlines() if line.startswith("submitted"))
        study_id = link.rsplit("/", 1)[-1]
        sampler.study_id = study_id
        print(f"submitted: {r.stdout.strip()}", flush=True)
        state = wait_final(server, study_id)
        wall = time.perf_counter() - t_submit
        time.sleep(2)
        cpu = sampler.server_cpu() - cpu0
        with open(root / "prefect/server.log", errors="replace") as f:
            f.seek(log0)
            paths = [m.group(1) for line in f if (m := re.search(r'"(?:GET|POST|PATCH|PUT|DELETE) (/api/\S+)', line))]
        polls = sum(p.endswith("/get_scheduled_flow_runs") for p in paths)
        jobs_cpu, study_cpu = workers_cpu(workers[1:]), workers_cpu(workers[:1])  # workers[0] runs the study
        print(f"study {state.name} in {wall:.0f} s: {state.message or ''}"[:500], flush=True)
        runs = job_runs(server, planned)
        (root / "jobs.json").write_text(json.dumps(runs, default=sorted, indent=0))  # each job's times, to read again
        lat = overheads(runs, args.workers)
        ui = render(server["url"][:-4], study_id, "orchestration", root)
    finally:
        sampler.stop = True
        for w in workers:
            try:
                os.killpg(w.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
        server["stop"]()
    n = len(runs)
    sleeps = args.sleep * len(planned)
    lines = [
        f"| jobs (cells) | {n} ({len(planned):,}) with {args.workers} workers (and one for the study flow), "
        f"{args.sleep:g} s a cell |",
        f"| study state, submit to end | {state.name}, {wall:.0f} s (sleep alone: {sleeps / args.workers:.0f} s at "
        f"{args.workers} at once) |",
        f"| overhead per job: could run -> a worker took it (Pending) | {spread(lat['pickup'])} |",
        f"| overhead per job: Pending -> Running (the run's process starts) | {spread(lat['start'])} |",
        "| overhead per job: the jobs it needs done -> its run created | " +
        (f"{spread(lat['created'])} ({len(lat['created'])} jobs) |" if lat["created"] else "no job needs another |"),
        f"| server CPU (prefect + PostgreSQL) | {cpu:.0f} s, {cpu / n:.2f} s a job |",
        f"| server API calls | {len(paths):,}: {len(paths) - polls:,} from the study and the runs "
        f"({(len(paths) - polls) / n:.0f} a job), {polls:,} the idle workers' polls (each worker once a second) |",
        f"| the job runs' processes' CPU (the job workers' children) | {jobs_cpu:.0f} s, {jobs_cpu / n:.1f} s a job |",
        f"| the study flow's CPU (its worker's children) | {study_cpu:.0f} s |",
        f"| study flow's peak memory | {sampler.rss / 2**20:,.0f} MiB |",
    ] + [f"| {k} in headless Chromium | {f'{v:.1f} s' if isinstance(v, float) else v} |" for k, v in ui.items()]
    head = (f"`python benchmarks/bench_orchestration.py --models {args.models} --workers {args.workers} --sleep "
            f"{args.sleep:g}`, {datetime.now():%Y-%m-%d %H:%M}, load before {load:.2f}, {os.cpu_count()} cores:")
    table = "\n".join([head, "", "| measure | value |", "|---|---|", *lines])
    print(table)
    if not args.no_docs:
        docs = ROOT / "docs/benchmarks.md"
        what = f"orchestration {args.models} models, {args.workers} workers"
        text, start, end = docs.read_text(), f"<!-- {what} -->", f"<!-- /{what} -->"
        block = f"{start}\n{table}\n{end}"
        text = re.sub(f"{re.escape(start)}.*?{re.escape(end)}", lambda _: block, text, flags=re.S) if start in text \
            else text.rstrip() + "\n\n" + block + "\n"
        docs.write_text(text)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
