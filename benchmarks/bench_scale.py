"""Paper scale, simulated: a store of every planned cell of configs/paper-k.yaml (its real plan: 5 models x 6 levels
x 6 sample counts x base, SFT, LoRA and 3 x 7 restorations = 4,145 cells, 2,000 test items per domain), written by
the store's own writer with plausible random values, then the everyday commands timed on it, with their peak memory:

- `ftscope status`;
- `ftscope report` (the HTML page and the README block);
- `ftscope results --table scores --where "cell_id = '...'"` for one cell;
- `Store.sql` for a typical join (accuracy by method, level and sample count);
- the planning of `ftscope retry` (what it would submit again);
- `ftscope validate` of the config over the store.

At 1/8, 1/4, 1/2 and the full plan, so the growth shows; the store is compacted (`ftscope compact`) at each size,
as the study flow does at its end, and `status` is also timed before that. With `--s3`, the same on an S3 API on
loopback (moto's server mode, started here), counting the requests each command makes.

The `runs` table marks the store synthetic, and `ftscope report` says so on every page. The models are tiny local
checkpoints under the paper's names and the data a synthetic EntityQuestions directory of the paper's size:
nothing here is a result.

Usage: python benchmarks/bench_scale.py [--sizes 8,4,2,1] [--s3] [--keep DIR]   (writes docs/benchmarks.md)
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FTSCOPE = str(Path(sys.executable).parent / "ftscope")
LAYERS = {"llama2-7b": 32, "llama2-13b": 40, "llama2-70b": 80, "llama3-8b": 32, "llama3-70b": 80}
MATRICES = ["q", "k", "v", "o", "gate", "up", "down"]


# -- the synthetic inputs: data of the paper's size, tiny local checkpoints under the paper's model names --------

def entityquestions(folder: Path, spec, train_per_relation: int = 2000, test_per_relation: int = 250) -> None:
    """EntityQuestions files: every in-domain relation with its training and test facts, every other with test facts."""
    rng = np.random.default_rng(0)
    for rel in spec.subsets:
        stem = spec.subsets[rel].questions[0]
        splits = {"test": test_per_relation} | ({"train": train_per_relation} if rel in spec.groups["id"] else {})
        for split, n in splits.items():
            records = [{"subject": f"{rel} {split} subject {i}", "question": stem.format(s=f"{rel} {split} subject {i}"),
                        "answers": [f"answer {int(rng.integers(0, 500))}"]} for i in range(n)]
            (folder / f"{rel}.{split}.json").write_text(json.dumps(records))


def tiny_checkpoint(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.sandbox.pretrain import build_tokenizer

    tok = build_tokenizer(["Question: what is it ?\nAnswer: it"])
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2, intermediate_size=32, max_position_embeddings=512)
                     ).save_pretrained(folder)
    tok.save_pretrained(folder)


def paper_config(root: Path, results: str, inputs: Path) -> Path:
    """configs/paper-k.yaml with this benchmark's data and local models (under `inputs`) and results; everything
    else as the paper's."""
    raw = yaml.safe_load((ROOT / "configs/paper-k.yaml").read_text())
    raw.update(results_dir=results, artifacts_dir=str(root / "artifacts"), cache_dir=str(root / "cache"))
    raw["data"]["path"] = str(inputs / "eq")
    for m in raw["models"]:
        m["path"] = str(inputs / "models" / m["name"])
    path = root / "paper-k.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# -- rows of every table, by the store's writer ---------------------------------------------------------------

class Writer:
    def __init__(self, cfg, study, data, store, planned):
        from ftscope import engines
        from ftscope.grid import cell_spec
        from ftscope.machine import versions
        from ftscope.studies import k

        self.cfg, self.store, self.planned = cfg, store, planned
        ds = k.data.the_dataset(data)
        self.test = ds.split("test")
        self.rng = np.random.default_rng(1)
        self.levels = {}
        self.spec = {p.cid: json.dumps(cell_spec(cfg, study, p.cell)) for p in planned}
        self.engine = {m.name: json.dumps(engines.identity(cfg, m)) for m in cfg.models}
        self.versions = versions()
        items = [it["item_id"] for it in self.test]
        self.items = pa.array(items + items, pa.string())  # the accuracy rows, then the KL rows
        self.domains = pa.array([it["domain"] for it in self.test] * 2, pa.string())
        self.metric = pa.array(["contains"] * len(items) + ["kl"] * len(items), pa.string())
        self.groups: dict[str, tuple] = {}  # model -> its test items' slices, and the items of each (domain, slice)

    def mastery(self, data, bases) -> None:
        from ftscope.studies.k.data import the_dataset
        from ftscope.studies.k.mastery import mastery_fingerprint

        items = the_dataset(data).items
        for m in self.cfg.models:
            levels = self.rng.choice(5, size=len(items), p=[0.3, 0.25, 0.15, 0.15, 0.15])
            r = np.where(levels == 0, 0.0, (levels - 1) * 0.25 + self.rng.uniform(0.01, 0.25, len(items)))
            self.levels[m.name] = {it["item_id"]: int(lvl) for it, lvl in zip(items, levels)}
            fp = mastery_fingerprint(self.cfg, m, bases[m.name], data)
            self.store.write("mastery", f"{m.name}-{fp}", pa.table({
                "model": [m.name] * len(items), "model_fp": ["synthetic"] * len(items),
                "data_fp": [data.fingerprint] * len(items),
                "item_id": [it["item_id"] for it in items], "relation": [it["relation"] for it in items],
                "split": [it["split"] for it in items], "domain": [it["domain"] for it in items],
                "exposure": [-1] * len(items), "hits": (r * 210).round().astype(int), "r": r, "level": levels,
                "n_map": [21] * len(items), "n_sample": [10] * len(items), "temperature": [0.7] * len(items),
                "engine": [self.engine[m.name]] * len(items)}))

    def _groups(self, model: str) -> tuple:
        if model not in self.groups:
            sl = [f"level={self.levels[model][it['item_id']]}" for it in self.test]
            doms = [it["domain"] for it in self.test]
            idx = {(d, s): np.array([i for i in range(len(sl)) if doms[i] == d and (s == "all" or sl[i] == s)])
                   for d in ("id", "ood") for s in ["all"] + sorted({x for x, dd in zip(sl, doms) if dd == d})}
            self.groups[model] = (pa.array(sl * 2, pa.string()), idx)
        return self.groups[model]

    def cell(self, p) -> None:
        cid, model = p.cid, p.cell.model
        n = len(self.test)
        slices, groups = self._groups(model)
        acc = self.rng.uniform(0.2, 0.7)
        correct = (self.rng.random(n) < acc).astype(float)
        kl = self.rng.gamma(2.0, 0.2, n)
        values = np.concatenate([correct, kl])
        self.store.write("scores", cid, pa.table({
            "cell_id": [cid] * 2 * n, "task": ["cbqa"] * 2 * n, "dataset": ["entityquestions"] * 2 * n,
            "domain": self.domains, "slice": slices, "prompt_map": [0] * 2 * n, "shots": [0] * 2 * n,
            "metric": self.metric, "item_id": self.items, "value": values,
            "prediction": [f"answer {i % 500}" for i in range(n)] + [None] * n}))
        metrics, kls = [], []
        for (d, s), idx in groups.items():
            c, k = correct[idx], kl[idx]
            metrics.append({"cell_id": cid, "task": "cbqa", "dataset": "entityquestions", "domain": d, "slice": s,
                            "prompt_map": 0, "shots": 0, "metric": "contains", "n": len(idx),
                            "total": float(c.sum()), "value": float(c.mean())})
            kls.append({"cell_id": cid, "dataset": "entityquestions", "domain": d, "slice": s, "n": len(idx),
                        "n_positions": 3 * len(idx), "value": float(k.mean()), "direction": "ft_base",
                        "positions": "answer"})
        self.store.write("metrics", cid, metrics)
        self.store.write("kl", cid, kls)
        layers = LAYERS[model]
        change = self.rng.gamma(2.0, 1e-5, (layers, len(MATRICES)))
        rows = [{"cell_id": cid, "scope": "matrix", "matrix": m, "layer": layer, "n_elements": 4096 * 4096,
                 "n_zero_base": 0, "mean_change": float(change[layer, j]), "sum_change": float(change[layer, j]) * 4096 ** 2,
                 "top1_share": None, "top5_share": None, "top10_share": None, "measure": "relative", "region": "transformer"}
                for layer in range(layers) for j, m in enumerate(MATRICES)]
        rows += [{**rows[j], "scope": "matrix_type", "layer": -1} for j in range(len(MATRICES))]
        rows.append({**rows[0], "scope": "region", "matrix": "all", "layer": -1, "top1_share": self.rng.uniform(0.5, 0.8),
                     "top5_share": self.rng.uniform(0.8, 0.9), "top10_share": self.rng.uniform(0.9, 0.95)})
        self.store.write("params", cid, rows)
        params = dict(p.cell.params)
        if "k_percent" in params:
            self.store.write("restoration", cid, [{"cell_id": cid, "parent_cell": p.parent_id,
                                                   "k_percent": float(params["k_percent"]), "strategy": params["strategy"],
                                                   "matrix": m, "n_elements": 4096 * 4096 * layers, "n_restored": 1000,
                                                   "fraction_restored": params["k_percent"] / 100, "threshold": 0.1,
                                                   "undone_share": self.rng.uniform(0.3, 0.9)} for m in MATRICES])
        now = datetime.now(timezone.utc)
        self.store.write("cells", f"{cid}-{now:%Y%m%dT%H%M%S%f}", [{
            "cell_id": cid, "study": self.cfg.study, "kind": "k", "model": model, "method": p.cell.method,
            "variant": p.cell.variant, "axes": json.dumps(dict(p.cell.axes)), "params": json.dumps(params),
            "seed": p.cell.seed, "parent_cell": p.parent_id, "status": "done", "error": None, "config": self.spec[cid],
            "started_at": now - timedelta(hours=1), "finished_at": now, "duration_s": 3600.0, "train_s": 3000.0,
            "eval_s": 600.0, "versions": self.versions, "host": "synthetic", "device": "synthetic", "threads": 1,
            "engine": self.engine[model], "machine": json.dumps({"cpu": "synthetic"})}])


def build(root: Path, results: str, inputs: Path, fraction: float, state: dict) -> dict:
    """Write the store up to `fraction` of the plan (adding to what an earlier, smaller size wrote)."""
    from ftscope.config import load_config
    from ftscope.plan import plan_cells
    from ftscope.runs import RunRecord
    from ftscope.store import Store
    from ftscope.studies import k

    if "writer" not in state:
        cfg = load_config(str(paper_config(root, results, inputs)))
        data = k.STUDY.load_data(cfg)
        bases = {m.name: m.path for m in cfg.models}
        store = Store(results)
        planned = plan_cells(cfg, k.STUDY, data, bases, store)
        state.update(cfg=cfg, store=store, planned=planned, done=0, writer=Writer(cfg, k.STUDY, data, store, planned))
        state["writer"].mastery(data, bases)
        RunRecord(cfg, store, None, "synthetic-" + cfg.study).finish(
            "synthetic", "written by benchmarks/bench_scale.py with random values: not results")
    planned, store = state["planned"], state["store"]
    upto = round(len(planned) * fraction)
    subset = planned[:upto]
    store.write("plan", state["cfg"].study, [{
        "cell_id": p.cid, "study": state["cfg"].study, "kind": "k", "label": p.cell.label, "model": p.cell.model,
        "method": p.cell.method, "variant": p.cell.variant, "axes": json.dumps(dict(p.cell.axes)), "seed": p.cell.seed,
        "parent_cell": p.parent_id} for p in subset])
    t0 = time.perf_counter()
    for p in planned[state["done"]:upto]:
        state["writer"].cell(p)
    state["done"] = upto
    return {"cells": upto, "write_s": time.perf_counter() - t0, "first": planned[0].cid}


# -- measuring ------------------------------------------------------------------------------------------------

def measure(args: list[str], env: dict, requests=None) -> dict:
    """Wall seconds and peak resident memory (MiB) of one command, in a fresh process; and the S3 requests it made."""
    before = requests() if requests else 0
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # status exits 1 when cells failed: none here
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-3000:]}")
    peak = int(r.stderr.strip().splitlines()[-1]) / 1024
    return {"wall": wall, "peak": peak, "requests": (requests() - before) if requests else None}


def commands(root: Path, results: str, first: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "status": [FTSCOPE, "status", results],
        "report (HTML + README block)": [FTSCOPE, "report", results, "--out", str(root / "report"), "--readme",
                                         str(root / "README.md")],
        "results --where one cell": [FTSCOPE, "results", results, "--table", "scores", "--where",
                                     f"cell_id = '{first}'", "--format", "csv", "--output", str(root / "one.csv")],
        "Store.sql join": [py, "-c", "from ftscope.store import Store; import sys; print(Store(sys.argv[1]).sql("
                           "\"SELECT c.model, c.method, c.level, c.n, avg(m.value) FROM metrics m JOIN cells c USING "
                           "(cell_id) WHERE m.domain = 'id' AND m.slice = 'all' GROUP BY ALL\").fetchall()[:1])", results],
        "retry planning": [py, "-c", "from ftscope.store import Store; from ftscope.plan import to_retry; import sys; "
                           "print(len(to_retry(Store(sys.argv[1]), 'paper-k')[1]))", results],
        "validate": [FTSCOPE, "validate", str(root / "paper-k.yaml"), "--results", results],
    }


class Moto:
    """moto's S3 server on loopback, counting the requests it answers."""

    def __init__(self, root: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = root / "moto.log"
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                                      str(self.port)], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": self.url, "AWS_EC2_METADATA_DISABLED": "true"}
        os.environ.update(self.env)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=self.url, scheme="http", allow_bucket_creation=True).create_dir("ftscope")

    def requests(self) -> int:
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if '" 2' in line or '" 4' in line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # the werkzeug server may linger on SIGTERM (seen at 4,145 cells)
            self.proc.kill()
            self.proc.wait()


def run(root: Path, results: str, inputs: Path, sizes: list[int], env: dict, requests=None) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("<!-- findings:paper-k -->\n<!-- /findings:paper-k -->\n")
    state, rows = {}, []
    for div in sorted(sizes, reverse=True):
        info = build(root, results, inputs, 1 / div, state)
        print(f"1/{div}: {info['cells']:,} cells written in {info['write_s']:.0f} s", flush=True)
        row = {"size": f"1/{div}" if div > 1 else "full", "cells": info["cells"]}
        row["status before compaction"] = measure(commands(root, results, info["first"])["status"], env, requests)
        t0 = time.perf_counter()
        out = subprocess.run([FTSCOPE, "compact", results], cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        row["compact s"] = time.perf_counter() - t0
        before = row["status before compaction"]
        print(f"  status before compaction: {before['wall']:.1f} s, {before['peak']:,.0f} MiB"
              + (f", {before['requests']:,} requests" if requests else "") + f"; compact {row['compact s']:.0f} s",
              flush=True)
        for name, args in commands(root, results, info["first"]).items():
            row[name] = measure(args, env, requests)
            print(f"  {name}: {row[name]['wall']:.1f} s, {row[name]['peak']:,.0f} MiB"
                  + (f", {row[name]['requests']:,} requests" if requests else ""), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict], s3: bool) -> str:
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    head = "| size | cells | compact s | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for r in rows:
        cells = [f"{r[n]['wall']:.1f} s, {r[n]['peak']:,.0f} MiB" + (f", {r[n]['requests']:,} req"
                 f" ({r[n]['requests'] / r['cells']:.2f}/cell)" if s3 else "") for n in names]
        lines.append(f"| {r['size']} | {r['cells']:,} | {r['compact s']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,4,2,1", help="fractions of the plan, as divisors")
    ap.add_argument("--s3", action="store_true", help="also on an S3 API on loopback (moto server)")
    ap.add_argument("--keep", help="build under this directory and keep it")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime, flush=True)
    root = Path(args.keep or tempfile.mkdtemp(prefix="ftscope-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    from ftscope import datasets

    spec = datasets.get("entityquestions")
    (root / "eq").mkdir(exist_ok=True)
    entityquestions(root / "eq", spec)
    for m in LAYERS:
        if not (root / "models" / m / "config.json").exists():
            tiny_checkpoint(root / "models" / m)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PREFECT_API_URL", None)
    local = run(root / "local", str(root / "local" / "results"), root, sizes, env)
    text = [f"`python benchmarks/bench_scale.py{' --s3' if args.s3 else ''}`, {time.strftime('%Y-%m-%d')}; load "
            f"before: `{uptime}`. Each command in a fresh process: wall time and peak resident memory; the store "
            f"compacted at each size (`ftscope compact`, its time in the table), `status` timed before that too.",
            "", "Local disk:", "", table(local, False)]
    if args.s3:
        moto = Moto(root)
        try:
            remote = run(root / "s3", "s3://ftscope/paper-k", root, sizes, {**env, **moto.env}, moto.requests)
        finally:
            moto.stop()
        text += ["", "S3 API (moto server on loopback; requests counted from its log):", "", table(remote, True)]
    out = "\n".join(text)
    print(out)
    from bench_cli import write_section

    write_section("Scale: paper-k's 4,145 cells, simulated", "bench_scale", out)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
