"""benchmarks/gpu_check.py's dry run: every step of the GPU check at toy size on the CPU, through ftscope's own
code paths, so the script a lent GPU machine runs cannot rot between lendings."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_dry_run_runs_every_step(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--out", str(tmp_path), "--dry-run"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = result["steps"]
    assert result["dry_run"] and set(steps) == {"sft_bf16", "zero3", "sampling", "restore", "kl_eval"}
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert steps["sft_bf16"]["loss_falls"] and steps["zero3"]["checkpoint_saved"]
    assert steps["sampling"]["samples"] == 80 and steps["sampling"]["hf_samples_per_s"] > 0
    assert steps["restore"]["streaming_peak_mib"] > 0 and steps["kl_eval"]["items"] == 32
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.count("\n| ") == 6 and "--dry-run" in table  # header + one row a step


def test_the_gpu_wheels_fit_the_carry_limit():
    """benchmarks/gpu_wheels.txt names each wheel with its size; together they stay under the 64 MiB that travels."""
    lines = [x.split() for x in (ROOT / "benchmarks/gpu_wheels.txt").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    names = [x[0] for x in lines]
    assert len(names) == len(set(names)) and any(n.startswith("deepspeed-") for n in names)
    assert sum(int(x[1]) for x in lines) < 64 * 2**20 - 8 * 2**20  # room left for the working tree itself
