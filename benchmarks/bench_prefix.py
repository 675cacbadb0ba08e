"""Shared prefixes computed once (ftscope/prefix.py) against the full rows, in one run on the Study G demo's base model
and data: FTICL training (sbx-nli-people at k=5, the demo's longest demonstrations), k-shot label scoring and k-shot
generation (sbx-nli-people at k=5, sbx-news at k=2; prompt map 0). Each case runs both ways, alternating, `--repeats`
times: min / median / max seconds, the ratio of the medians, and whether the two ways agree (labels picked, answers).
A training leg's time includes loading the base model afresh (the same small cost in both ways).

Usage: python benchmarks/bench_prefix.py [--train-items 160] [--repeats 3]   (writes docs/benchmarks.md; pretrains the
demo's model first if `ftscope run configs/demo-g.yaml` has not run: about 4 minutes)
"""

import argparse
import statistics
import subprocess
import tempfile
import time

import torch
from bench_cli import ROOT, write_section

from ftscope import prefix
from ftscope.config import load_config
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.evaluate import label_token_ids
from ftscope.generation import generate
from ftscope.models import base_model_path, load_model, load_tokenizer
from ftscope.prompts import Prompter, encode_all
from ftscope.studies import g
from ftscope.studies.g.data import train_pool
from ftscope.train.config import TrainConfig
from ftscope.train.examples import build_examples
from ftscope.train.trainer import train, training_arguments


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


WORTH = prefix.WORTH


def sharing(on: bool) -> None:
    """The engine's switch: off, no common prefix is long enough to share (training's is the examples' `shared`)."""
    prefix.WORTH = WORTH if on else 10**9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-items", type=int, default=160)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime)
    cfg = load_config(str(ROOT / "configs/demo-g.yaml"))
    data = g.STUDY.load_data(cfg)
    path = base_model_path(cfg, cfg.models[0], data)
    tok, prompt_cfg = load_tokenizer(path), cfg.models[0].prompt

    nli, news = data.dataset("sbx-nli-people"), data.dataset("sbx-news")
    nli_p, news_p = Prompter(nli.spec, prompt_cfg, tok), Prompter(news.spec, prompt_cfg, tok)
    shared_examples = build_examples(train_pool(nli)[:a.train_items], nli_p, tok, cfg.train.max_length,
                                     demos=nli.demos[:5])
    full_examples = [{k: v for k, v in e.items() if k != "shared"} for e in shared_examples]
    label_prompts = encode_all(tok, [nli_p.text(it, 0, nli.demos[:5]) for it in nli.split("test")])
    labels = label_token_ids(tok, nli_p, nli.split("test")[0])
    gen_prompts = encode_all(tok, [news_p.text(it, 0, news.demos[:2]) for it in news.split("test")])
    model = load_model(path)
    engine = HFEngine(model, tok, HFOptions(), token_budget=65536)

    def fit(examples):
        def run():
            m = load_model(path)
            with tempfile.TemporaryDirectory() as out:
                args = training_arguments(TrainConfig(**{**cfg.train.model_dump(), "epochs": 1}), out,
                                          lr=cfg.train.lr, seed=0)
                torch.manual_seed(0)
                return train(m, tok, examples, args).state.log_history[-1].get("train_loss")
        return run

    cases = {
        "FTICL training (sbx-nli-people, k=5, 1 epoch)": (fit(shared_examples), fit(full_examples)),
        "label scoring (sbx-nli-people, k=5)": (lambda: engine.label_logprobs(label_prompts, labels),) * 2,
        "generation (sbx-news, k=2, greedy)": (lambda: generate(model, tok, gen_prompts, max_new_tokens=24),) * 2,
    }
    rows = []
    for name, (shared_fn, full_fn) in cases.items():
        times, outs = {"shared": [], "full": []}, {}
        for _ in range(a.repeats):
            for way, fn in (("shared", shared_fn), ("full", full_fn)):
                sharing(way == "shared")
                s, outs[way] = timed(fn)
                times[way].append(s)
        sharing(True)
        agree = _agreement(outs["shared"], outs["full"])
        med = {w: statistics.median(t) for w, t in times.items()}
        rows.append(f"| {name} | {_spread(times['shared'])} | {_spread(times['full'])} | "
                    f"x{med['full'] / med['shared']:.2f} | {agree} |")
        print(rows[-1], flush=True)

    n_train, n_label, n_gen = len(shared_examples), len(label_prompts), len(gen_prompts)
    mean_len = sum(len(e["input_ids"]) for e in shared_examples) // n_train
    text = "\n".join([
        f"`python benchmarks/bench_prefix.py --train-items {a.train_items} --repeats {a.repeats}`, "
        f"{time.strftime('%Y-%m-%d')}, this machine ({torch.get_num_threads()} threads); load before: `{uptime}`. "
        f"The Study G demo's base model; {n_train} FTICL training examples (shared prefix "
        f"{shared_examples[0].get('shared', 0)} tokens of about {mean_len}), "
        f"{n_label} label-scoring prompts, {n_gen} generation prompts. Seconds, min / median / max of "
        f"{a.repeats}; speed-up = the full rows' median over the shared prefix's.",
        "",
        "| case | shared prefix (s) | full rows (s) | speed-up | the two agree |",
        "|---|---|---|---|---|",
        *rows,
    ])
    write_section("Shared prefixes computed once (Study G)", "bench_prefix", text)
    print(text)


def _spread(values) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def _agreement(a, b) -> str:
    if isinstance(a, float) or a is None:  # a training loss
        return f"final loss {a:.4f} vs {b:.4f}"
    if isinstance(a[0][0], float):  # label log-probabilities: the label each picks
        pick = [max(range(len(r)), key=r.__getitem__) for r in a], [max(range(len(r)), key=r.__getitem__) for r in b]
        return f"{sum(x == y for x, y in zip(*pick))}/{len(a)} labels"
    return f"{sum(x == y for x, y in zip(a, b))}/{len(a)} answers"


if __name__ == "__main__":
    main()
