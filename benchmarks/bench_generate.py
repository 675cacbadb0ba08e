"""Mastery sampling: ftscope.generate (prefill once, repeat the KV cache) vs transformers'
model.generate(num_return_sequences=n), on the same sandbox-sized model and prompts, in one run.

Usage: python benchmarks/bench_generate.py
"""

import time

import torch

from ftscope.generate import generate, stop_token_ids
from ftscope.sandbox_model import build_tokenizer

N_PROMPTS, N_SAMPLES, MAX_NEW = 210, 10, 6


def main() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    words = [f"w{i}" for i in range(3000)]
    tok = build_tokenizer([" ".join(words), "Question: Where was born ?\nAnswer:"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, intermediate_size=256,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)).eval()
    prompts = [f"Question: Where was {words[i]} {words[i + 1]} born?\nAnswer:" for i in range(N_PROMPTS)]

    def ours():
        generate(model, tok, prompts, max_new_tokens=MAX_NEW, batch_size=512, num_samples=N_SAMPLES, temperature=0.7)

    def hf():
        tok.padding_side = "left"
        with torch.no_grad():
            for i in range(0, len(prompts), 51):
                enc = tok(prompts[i:i + 51], return_tensors="pt", padding=True, add_special_tokens=False)
                model.generate(**enc, do_sample=True, temperature=0.7, top_k=None, top_p=None, max_new_tokens=MAX_NEW,
                               num_return_sequences=N_SAMPLES, eos_token_id=stop_token_ids(tok),
                               pad_token_id=tok.pad_token_id)

    times = {}
    for name, fn in (("transformers generate", hf), ("ftscope.generate", ours)):
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        times[name] = (time.perf_counter() - t0) / 3
    n = N_PROMPTS * N_SAMPLES
    print(f"{N_PROMPTS} prompts x {N_SAMPLES} samples, up to {MAX_NEW} new tokens, {model.num_parameters() / 1e6:.2f}M-parameter Llama")
    print("| sampler | s per round | sequences/s |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {n / t:.0f} |")
    print(f"speed-up: x{times['transformers generate'] / times['ftscope.generate']:.2f}")


if __name__ == "__main__":
    main()
