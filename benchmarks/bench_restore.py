"""Streaming restoration vs loading both models whole, on a Llama of >= 100M parameters sharded on disk.

Each method runs in a fresh subprocess; its peak resident memory (VmHWM, the high-water mark of its
own address space; ru_maxrss would include the parent's) and wall time are compared as ratios
within this run. Usage: python benchmarks/bench_restore.py [--workdir DIR]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

K_PERCENT = 5


def make_pair(root: Path) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                      num_attention_heads=12, num_key_value_heads=12, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(root / "base", max_shard_size="100MB")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * torch.rand_like(p) ** 6 * 1e-3)
    model.save_pretrained(root / "ft", max_shard_size="100MB")
    return model.num_parameters()


def streaming(root: Path) -> None:
    from ftscope.restoration import restore

    restore(root / "base", root / "ft", root / "out_stream", k_percent=K_PERCENT, max_shard_bytes=100 * 2**20)


def in_memory(root: Path) -> None:
    """The paper's official approach: both models whole in memory, a global sort, then save."""
    from transformers import AutoModelForCausalLM

    from ftscope.change import REGIONS, change

    base = AutoModelForCausalLM.from_pretrained(root / "base").state_dict()
    ft_model = AutoModelForCausalLM.from_pretrained(root / "ft")
    ft = ft_model.state_dict()
    names = [n for n in ft if REGIONS["transformer"].search(n)]
    allc = torch.cat([change(base[n], ft[n]).flatten() for n in names])
    k = round(allc.numel() * K_PERCENT / 100)
    threshold = allc.topk(k).values[-1]
    with torch.no_grad():
        for n in names:
            mask = change(base[n], ft[n]) >= threshold
            ft[n].copy_(torch.where(mask, base[n], ft[n]))
    ft_model.save_pretrained(root / "out_memory", max_shard_size="100MB")


def baseline(root: Path) -> None:
    """Only the imports both methods pay for: the floor under every peak."""
    import transformers  # noqa: F401

    import ftscope.restoration  # noqa: F401


def child(method: str, root: str) -> None:
    t0 = time.perf_counter()
    {"streaming": streaming, "in_memory": in_memory, "baseline": baseline}[method](Path(root))
    seconds = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text()
    peak_mib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    print(json.dumps({"method": method, "seconds": seconds, "peak_mib": peak_mib}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir")
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="ftscope-bench-"))
    n = make_pair(root)
    results = {}
    for method in ("baseline", "in_memory", "streaming"):
        out = subprocess.run([sys.executable, __file__, "--child", method, str(root)], capture_output=True,
                             text=True, check=True)
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    same = all(torch.equal(a, b) for a, b in zip(_load(root / "out_memory").values(), _load(root / "out_stream").values()))
    s, m, b = results["streaming"], results["in_memory"], results["baseline"]["peak_mib"]
    print(f"model: {n / 1e6:.0f}M parameters (fp32, {4 * n / 2**20:.0f} MiB per checkpoint), shards of 100 MB; "
          f"restore the top {K_PERCENT}% of the transformer region")
    print("| method | wall s | peak RSS MiB | above the import baseline MiB |\n|---|---|---|---|")
    for r in (m, s):
        print(f"| {r['method']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {r['peak_mib'] - b:.0f} |")
    print(f"import baseline: {b:.0f} MiB")
    print(f"streaming / in-memory: time x{s['seconds'] / m['seconds']:.2f}, peak memory x{s['peak_mib'] / m['peak_mib']:.2f} "
          f"(above baseline x{(s['peak_mib'] - b) / (m['peak_mib'] - b):.2f}); identical restored weights: {same}")


def _load(d: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(f))
    return dict(sorted(out.items()))


if __name__ == "__main__":
    main()
