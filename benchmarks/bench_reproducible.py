"""What `reproducible: true` costs, and whether the demo's verdicts depend on the CPU kernels: the demo study
run from empty results, artifacts and cache directories twice in one benchmark run, pinned (reproducible: true,
ATen/MKL/oneDNN at AVX2) and not (reproducible: false, the kernels torch picks here: AVX-512 on this machine),
with the wall time of each and the verdict of each finding side by side. The pinned leg runs the config as it
is (its own directories, e.g. results/demo, emptied first), so the README's block can be written from it.

Usage: python benchmarks/bench_reproducible.py [--config configs/demo.yaml] [--pinned-only]   (writes
docs/benchmarks.md). Run it on an idle machine: it prints `uptime` first. About 25 minutes for the demo; with
`--pinned-only` the pinned leg alone (the demo's time from empty directories, as a new user sees it), its
findings printed to compare with an earlier run's.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_cli import FTSCOPE, ROOT, write_section

sys.path.insert(0, str(ROOT))


def run_leg(config: Path, log: Path) -> tuple[float, int]:
    """(wall s, exit code) of `ftscope run` on `config` from empty directories; its output (timestamped log lines,
    so where the time went can be read afterwards) in `log`."""
    from ftscope.config import load_config

    cfg = load_config(config)
    for d in (cfg.results_dir, cfg.cache_dir, str(Path(cfg.artifacts_dir) / cfg.study)):
        shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        r = subprocess.run([FTSCOPE, "run", str(config)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    print(f"{config}: exit {r.returncode}, its output in {log}", flush=True)
    return time.perf_counter() - t0, r.returncode


def verdicts(results_dir: str) -> list[tuple[str, str, str]]:
    """(finding, A - B [interval], verdict) of each comparison in the study's report, its numbers as the report
    writes them (ftscope/report/numbers.py: points for scores)."""
    from ftscope.report import numbers, render
    from ftscope.store import Store

    store = Store(results_dir)
    out = []
    for study, res in render.read_results(store, None).values():
        for c in study.report.comparisons(res):
            out.append((c.claim, " ".join(numbers.difference(c.diff, c.lo, c.hi, c.unit)), c.verdict))
    return out


def main() -> None:
    from ftscope.config import load_config

    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ftscope-bench-reproducible"),
                   help="the native leg's results, artifacts and cache (kept, to look at)")
    p.add_argument("--pinned-only", action="store_true", help="time the config as it is, from empty directories")
    a = p.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime)
    pinned = ROOT / a.config
    tmp = Path(a.workdir)
    tmp.mkdir(parents=True, exist_ok=True)
    native = tmp / "native.yaml"
    native.write_text(yaml.safe_dump({"extends": str(pinned), "reproducible": False,
                                      "results_dir": f"{tmp}/results", "artifacts_dir": f"{tmp}/artifacts",
                                      "cache_dir": f"{tmp}/cache"}))
    legs = {}
    if a.pinned_only:
        wall, rc = run_leg(pinned, tmp / f"{Path(a.config).stem}.log")
        if rc != 0:
            raise SystemExit(f"ftscope run {pinned} exited {rc}")
        lines = [f"`python benchmarks/bench_reproducible.py --config {a.config} --pinned-only`, "
                 f"{time.strftime('%Y-%m-%d')}, this machine (2 cores); load before: `{uptime}`. `ftscope run "
                 f"{a.config}` from empty results, artifacts and cache directories: **{wall / 60:.1f} min**.", "",
                 "| finding | A - B [95%] | verdict |", "|---|---|---|"]
        lines += [f"| {claim} | {diff} | {verdict} |" for claim, diff, verdict in verdicts(load_config(pinned).results_dir)]
        text = "\n".join(lines)
        print(text)
        write_section(f"The demo's time from empty directories ({a.config})", f"bench-demo-time-{Path(a.config).stem}",
                      text)
        return
    for name, config in (("pinned (reproducible: true)", pinned), ("native (reproducible: false)", native)):
        wall, rc = run_leg(config, tmp / f"{name.split()[0]}.log")
        if rc != 0:
            raise SystemExit(f"{name}: ftscope run {config} exited {rc}")
        legs[name] = (wall, verdicts(load_config(config).results_dir))
        print(f"{name}: {wall / 60:.1f} min", flush=True)
    (on_name, (on_wall, on_v)), (off_name, (off_wall, off_v)) = legs.items()
    same = [x[2] == y[2] for x, y in zip(on_v, off_v)]
    lines = [f"`python benchmarks/bench_reproducible.py --config {a.config}`, {time.strftime('%Y-%m-%d')}, this "
             f"machine (2 cores); load before: `{uptime}`. One run of each leg from empty directories.", "",
             "| leg | wall | |", "|---|---|---|",
             f"| {on_name} | {on_wall / 60:.1f} min | x{on_wall / off_wall:.2f} of native |",
             f"| {off_name} | {off_wall / 60:.1f} min | |", "",
             "| finding | pinned: A - B [95%] | verdict | native: A - B [95%] | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {x[0]} | {x[1]} | {x[2]} | {y[1]} | {y[2]} |" for x, y in zip(on_v, off_v)]
    lines += ["", f"Verdicts that match: {sum(same)} of {len(same)}" + ("" if len(on_v) == len(off_v) else
              f" (the legs have {len(on_v)} and {len(off_v)} findings)") + "."]
    text = "\n".join(lines)
    print(text)
    write_section("The cost of reproducible kernels, and verdicts under each", "bench-reproducible", text)


if __name__ == "__main__":
    main()
