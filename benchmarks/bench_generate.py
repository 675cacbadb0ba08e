"""Mastery-style sampling (N samples per prompt at temperature 0.7, answers cut at the first line) with
transformers' plain `generate` (ftscope before the fast path: every prompt prefilled N times, finished
rows decoded to the end, batches padded to their longest prompt) and with `ftscope.generation.generate`,
on the same prompts in one run. Reports samples per second and the ratio.

(a) the demo's trained sandbox model on the demo's own mastery prompts (built first if not cached:
    `ftscope run configs/demo.yaml` leaves it in .cache/ftscope);
(b) a randomly initialised Llama of about 100M parameters with a 32k vocabulary and prompts of 20-40 tokens.

Usage: python benchmarks/bench_generate.py [--items N] [--prompts N] [--threads N]
"""

import argparse
import time

import torch

from ftscope import generation


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sandbox_prompts(n_items: int):
    from ftscope.config import load_config
    from ftscope.mastery import phrasings
    from ftscope.models import base_model_path, load_model, load_tokenizer
    from ftscope.prompts import Prompter, encode
    from ftscope.studies import k

    cfg = load_config("configs/demo.yaml")
    data = k.load_data(cfg)
    path = base_model_path(cfg.models[0], data, cfg.cache_dir)
    tok, model = load_tokenizer(path), load_model(path)
    ds = k.the_dataset(data)
    prompter = Prompter(ds.spec, cfg.models[0].prompt, tok)
    items = ds.items[:n_items]
    prompts = [encode(tok, prompter.text({**it, "question": q})) for it in items for q in phrasings(prompter, it, 21)]
    return model, tok, prompts, cfg.mastery


def random_llama(n_prompts: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.sandbox.pretrain import build_tokenizer

    tok = build_tokenizer([" ".join(f"w{i}" for i in range(32000)) + "\n"])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=640, intermediate_size=1728, num_hidden_layers=12,
                      num_attention_heads=10, num_key_value_heads=10, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, len(tok), (int(torch.randint(20, 41, (1,), generator=g)),), generator=g).tolist()
               for _ in range(n_prompts)]
    return model, tok, prompts


def compare(name: str, model, tok, prompts, *, n_sample: int, max_new_tokens: int, batch_size: int) -> dict:
    kw = dict(max_new_tokens=max_new_tokens, num_samples=n_sample, temperature=0.7)
    plain, t_plain = timed(lambda: generation.generate_plain(model, tok, prompts, batch_size=batch_size, **kw))
    fast, t_fast = timed(lambda: generation.generate(model, tok, prompts, **kw))
    greedy_same = generation.generate_plain(model, tok, prompts[:64], batch_size=64, max_new_tokens=max_new_tokens) \
        == generation.generate(model, tok, prompts[:64], max_new_tokens=max_new_tokens)
    n = len(prompts) * n_sample
    return {"case": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "prompts": len(prompts),
            "samples": n, "plain_sps": n / t_plain, "fast_sps": n / t_fast, "ratio": t_plain / t_fast,
            "plain_s": t_plain, "fast_s": t_fast, "greedy_same": greedy_same,
            "mean_len_plain": sum(len(s) for ps in plain for s in ps) / n,
            "mean_len_fast": sum(len(s) for ps in fast for s in ps) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=400, help="demo items (x 21 phrasings x 10 samples)")
    ap.add_argument("--prompts", type=int, default=48, help="prompts for the random 100M model (x 10 samples)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, prompts, mastery = sandbox_prompts(args.items)
    rows = [compare("(a) demo sandbox model, mastery prompts", model, tok, prompts, n_sample=mastery.n_sample,
                    max_new_tokens=mastery.max_new_tokens, batch_size=512)]
    model, tok, prompts = random_llama(args.prompts)
    rows.append(compare("(b) random Llama, 32k vocabulary, 20-40 token prompts", model, tok, prompts, n_sample=10,
                        max_new_tokens=8, batch_size=512))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
    print("| case | parameters | prompts x samples | plain generate samples/s | ftscope samples/s | speed-up | "
          "greedy answers identical |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['params_m']:.1f}M | {r['prompts']} x {r['samples'] // r['prompts']} | "
              f"{r['plain_sps']:.0f} ({r['plain_s']:.1f} s) | {r['fast_sps']:.0f} ({r['fast_s']:.1f} s) | "
              f"x{r['ratio']:.2f} | {r['greedy_same']} |")
    for r in rows:
        print(f"{r['case']}: mean answer length {r['mean_len_plain']:.2f} chars (plain) vs {r['mean_len_fast']:.2f} (fast)")


if __name__ == "__main__":
    main()
