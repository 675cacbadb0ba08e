"""How fast the everyday commands start: CPU and wall time (median of 5 runs, each a fresh process) of
`ftscope --help`, `ftscope validate configs/demo.yaml` and `ftscope status` on a finished demo store; and a
no-op re-run of the finished smoke study (every cell done, the store unchanged) as a ratio to its first run
from empty results, artifacts and cache directories. Writes the table into docs/benchmarks.md.

Usage: python benchmarks/bench_cli.py [--demo-results results/demo] [--repeats 5]
Run it on an idle machine: it prints `uptime` first.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FTSCOPE = str(Path(sys.executable).parent / "ftscope")


def timed(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, CPU s: user + system of the child) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of(args: list[str], repeats: int, env: dict | None = None) -> dict:
    runs = [timed(args, env) for _ in range(repeats)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "wall_min": min(walls),
            "wall_max": max(walls)}


def write_section(title: str, marker: str, text: str) -> None:
    """Replace (or add) the block between <!-- marker --> lines in docs/benchmarks.md."""
    doc = ROOT / "docs" / "benchmarks.md"
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    body, block = doc.read_text(), f"{start}\n{text}\n{end}"
    if start in body:
        body = body[:body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    doc.write_text(body)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--demo-results", default="results/demo")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    rows = [("ftscope --help", median_of([FTSCOPE, "--help"], a.repeats, env)),
            ("ftscope validate configs/demo.yaml",
             median_of([FTSCOPE, "validate", "configs/demo.yaml"], a.repeats, env)),
            (f"ftscope status {a.demo_results}", median_of([FTSCOPE, "status", a.demo_results], a.repeats, env))]
    with tempfile.TemporaryDirectory() as tmp:
        raw = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
        raw.update(results_dir=f"{tmp}/results", artifacts_dir=f"{tmp}/artifacts", cache_dir=f"{tmp}/cache")
        cfg = Path(tmp) / "smoke.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        first = timed([FTSCOPE, "run", str(cfg)], env)
        noop = median_of([FTSCOPE, "run", str(cfg)], a.repeats, env)
    ratio = noop["wall"] / first[0]
    lines = [f"`python benchmarks/bench_cli.py`, {time.strftime('%Y-%m-%d')}, this machine; load before: "
             f"`{uptime}`. Median of {a.repeats} fresh processes (min-max of the wall time in brackets).", "",
             "| command | wall s | CPU s |", "|---|---|---|"]
    lines += [f"| `{name}` | {m['wall']:.2f} [{m['wall_min']:.2f}-{m['wall_max']:.2f}] | {m['cpu']:.2f} |"
              for name, m in rows]
    lines += [f"| `ftscope run` smoke study, first run (empty results, artifacts, cache) | {first[0]:.1f} | "
              f"{first[1]:.1f} |",
              f"| `ftscope run` smoke study again, nothing to do | {noop['wall']:.2f} [{noop['wall_min']:.2f}-"
              f"{noop['wall_max']:.2f}] | {noop['cpu']:.2f} |", "",
              f"**A no-op re-run takes {100 * ratio:.1f}% of the first run's wall time** (goal < 5%). `--help`: "
              f"{rows[0][1]['wall']:.2f} s (goal < 1 s); `validate` of the demo: {rows[1][1]['cpu']:.2f} s of CPU "
              f"(goal < 5 s)."]
    text = "\n".join(lines)
    print(text)
    write_section("Command start-up and no-op re-runs", "bench_cli", text)


if __name__ == "__main__":
    main()
