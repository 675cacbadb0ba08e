"""The GPU path, measured in one prepared run on a lent machine (one H200 here, about 8 minutes), through
ftscope's own code paths, not copies:

1. sft_bf16      an SFT cell of a ~1B-parameter random Llama in bf16 on one GPU (ftscope.train.trainer):
                 tokens/s, peak GPU memory, the loss falling
2. zero3         the same cell through the multi-process launcher (ftscope.train.launcher + worker) with
                 DeepSpeed ZeRO-3 and one GPU rank, when DeepSpeed imports there
3. sampling      mastery-shaped sampling (10 samples per prompt, T 0.7) with plain `generate` and the hf
                 engine (ftscope's fast path) on the GPU: samples/s and the ratio; vLLM when it imports
4. restore       streaming restoration of the cell's checkpoint (ftscope.restoration) vs loading both models
                 whole: time and peak host memory, each in its own process
5. kl_eval       token-level KL and greedy evaluation of the cell on the GPU (ftscope.divergence, the hf
                 engine)

Each step's result (or its error: a failing step never stops the others) goes to gpu_check.json and a
Markdown table gpu_check.md under --out; steps left when --budget-s is spent are skipped, saying so.
`--dry-run` runs every step at toy size on the CPU (CI runs it, so the script cannot rot between lendings).

Usage: python benchmarks/gpu_check.py --out DIR [--dry-run] [--budget-s 480]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SIZES = {"full": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 16,
                  "intermediate_size": 5504, "vocab": 32000, "examples": 2048, "prompts": 256, "batch_size": 16},
         "dry": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
                 "intermediate_size": 128, "vocab": 300, "examples": 48, "prompts": 8, "batch_size": 8}}


class Check:
    def __init__(self, out: Path, dry: bool, budget_s: float):
        self.out, self.dry, self.deadline = out, dry, time.monotonic() + budget_s
        self.size = SIZES["dry" if dry else "full"]
        self.device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.results: dict = {}

    def step(self, name: str, fn) -> None:
        if time.monotonic() > self.deadline:
            self.results[name] = {"status": "skipped", "why": "the time budget was spent"}
            return
        t0 = time.perf_counter()
        try:
            self.results[name] = {"status": "ok", **fn()}
        except Exception as e:  # noqa: BLE001 -- a failing step is recorded and the others still run
            self.results[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                                  "where": traceback.format_exc(limit=4)[-1500:]}
        self.results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"[gpu_check] {name}: {json.dumps(self.results[name])[:600]}", flush=True)

    # -- the cell's pieces ---------------------------------------------------------------------------

    def build(self) -> dict:
        """A random Llama of the chosen size with a word-level vocabulary, saved as a checkpoint (the base)."""
        from transformers import LlamaConfig, LlamaForCausalLM

        from ftscope.sandbox.pretrain import build_tokenizer

        s = self.size
        self.tok = build_tokenizer([" ".join(f"w{i}" for i in range(s["vocab"] - 8)) + "\n Question : ? Answer"])
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(self.tok), max_position_embeddings=256, tie_word_embeddings=False,
                          pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
                          bos_token_id=self.tok.bos_token_id,
                          **{k: v for k, v in s.items() if k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                                "num_key_value_heads", "intermediate_size")})
        model = LlamaForCausalLM(cfg).to(torch.bfloat16 if self.device == "cuda" else torch.float32)
        model.save_pretrained(self.work / "base", max_shard_size="2GB")
        self.tok.save_pretrained(self.work / "base")
        self.params = model.num_parameters()
        return model

    def items(self, n: int) -> list[dict]:
        """Question/answer items whose answer is a function of the question (the loss can fall)."""
        import random

        rng = random.Random(0)
        words = [f"w{i}" for i in range(self.size["vocab"] - 8)]
        out = []
        for i in range(n):
            q = rng.sample(words, 6)
            out.append({"item_id": f"i{i}", "question": " ".join(q), "answers": [q[0] + " " + q[-1]]})
        return out

    def prompter(self):
        from ftscope.datasets.spec import DatasetSpec
        from ftscope.prompts import PromptConfig, Prompter

        spec = DatasetSpec(name="gpu-check", task="qa", type="generation", metric="contains",
                           templates=["Question: {question}?\nAnswer:"], target="answers", source={"format": "files"})
        return Prompter(spec, PromptConfig(), self.tok)

    def train_args(self, out: Path, deepspeed: dict | None = None):
        from ftscope.train.config import TrainConfig
        from ftscope.train.trainer import training_arguments

        cfg = TrainConfig(epochs=1, lr=1e-4 if not self.dry else 1e-2, batch_size=self.size["batch_size"], max_length=64,
                          bf16=self.device == "cuda")
        return cfg, training_arguments(cfg, str(out), lr=cfg.lr, seed=0, deepspeed=deepspeed)

    # -- the steps -----------------------------------------------------------------------------------

    def sft_bf16(self) -> dict:
        from ftscope.train.examples import build_examples
        from ftscope.train.trainer import train

        model = self.build().to(self.device)
        examples = build_examples(self.items(self.size["examples"]), self.prompter(), self.tok, 64)
        _, args = self.train_args(self.work / "trainer")
        args.logging_steps = 1 if self.dry else 5  # at least two logged losses either way
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer = train(model, self.tok, examples, args)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        runtime = next(h["train_runtime"] for h in trainer.state.log_history if "train_runtime" in h)
        tokens = sum(len(e["input_ids"]) for e in examples) * args.num_train_epochs
        model.save_pretrained(self.work / "sft")
        self.tok.save_pretrained(self.work / "sft")
        self.model = model
        return {"parameters_m": round(self.params / 1e6, 1), "examples": len(examples), "steps": trainer.state.global_step,
                "tokens_per_s": round(tokens / runtime), "train_s": round(runtime, 1),
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.device == "cuda" else None,
                "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
                "loss_falls": losses[-1] < losses[0]}

    def zero3(self) -> dict:
        try:
            import deepspeed  # noqa: F401  # the wheel travels with the working tree (benchmarks/gpu_wheels.txt)
        except Exception as e:  # noqa: BLE001
            return {"status": "skipped", "why": f"DeepSpeed does not import here: {type(e).__name__}: {e}"[:500]}
        from ftscope.train.deepspeed import deepspeed_config
        from ftscope.train.examples import build_examples
        from ftscope.train.launcher import launch

        cfg, _ = self.train_args(self.work / "zero3-trainer")
        spec = {"base_path": str(self.work / "base"), "trust_remote_code": False,
                "dtype": "bfloat16" if self.device == "cuda" else "float32", "use_safetensors": True, "lora": None,
                "train": cfg.model_dump(), "lr": cfg.lr, "seed": 0,
                "examples": build_examples(self.items(self.size["examples"]), self.prompter(), self.tok, 64),
                "trainer_dir": str(self.work / "zero3-trainer"), "out_dir": str(self.work / "zero3-model"),
                "deepspeed": str(deepspeed_config("zero3")), "resume": False}
        (self.work / "zero3.json").write_text(json.dumps(spec))
        lines: list[str] = []
        t0 = time.perf_counter()
        launch(["-m", "ftscope.train.worker", str(self.work / "zero3.json")], nproc=1, log_file=self.work / "zero3.log",
               gpus=[0] if self.device == "cuda" else None, on_line=lines.append, timeout_s=600,
               env={"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
        wall = time.perf_counter() - t0
        states = [json.loads(x.split(" ", 1)[1]) for x in lines if x.startswith("ftscope-progress ")]
        info = states[-1]["info"] if states else {}
        return {"wall_s": round(wall, 1), "samples_per_s": info.get("samples_per_s"), "loss": info.get("loss"),
                "checkpoint_saved": (self.work / "zero3-model" / "config.json").exists()}

    def sampling(self) -> dict:
        from ftscope import generation
        from ftscope.engines import vllm as vllm_engine
        from ftscope.engines.hf import HFEngine, HFOptions
        from ftscope.prompts import encode

        model, prompter = self.model.eval(), self.prompter()
        prompts = [encode(self.tok, prompter.text(it)) for it in self.items(self.size["prompts"])]
        kw = dict(max_new_tokens=8, num_samples=10, temperature=0.7)
        sync = torch.cuda.synchronize if self.device == "cuda" else (lambda: None)
        generation.generate_plain(model, self.tok, prompts[:4], batch_size=64, **kw)  # warm-up
        t0 = time.perf_counter()
        generation.generate_plain(model, self.tok, prompts, batch_size=640, **kw)
        sync()
        t_plain = time.perf_counter() - t0
        hf = HFEngine(model, self.tok, HFOptions(), 1 << 20)
        hf.generate(prompts[:4], **kw)
        t0 = time.perf_counter()
        hf.generate(prompts, **kw)
        sync()
        t_hf = time.perf_counter() - t0
        n = len(prompts) * 10
        out = {"samples": n, "plain_samples_per_s": round(n / t_plain), "hf_samples_per_s": round(n / t_hf),
               "hf_over_plain": round(t_plain / t_hf, 2)}
        if (why := vllm_engine.problem()) is None:
            model.to("cpu")
            engine = vllm_engine.VLLMEngine(str(self.work / "sft"), _Entry, [0] if self.device == "cuda" else None,
                                            vllm_engine.VLLMOptions(kv_cache_gib=0.5 if self.device == "cpu" else None,
                                                                      enforce_eager=self.dry))  # no compile at toy size
            engine.generate(prompts[:4], **kw)
            t0 = time.perf_counter()
            engine.generate(prompts, **kw)
            out.update(vllm_samples_per_s=round(n / (time.perf_counter() - t0)))
            engine.close()
            model.to(self.device)
        else:
            out["vllm"] = f"not run: {why}"
        return out

    def restore(self) -> dict:
        """benchmarks/bench_restore.py's methods on the cell's own checkpoint (base vs sft), each in a fresh
        process whose peak resident memory is its own; the import baseline is the floor under both."""
        (self.work / "ft").unlink(missing_ok=True)
        (self.work / "ft").symlink_to(self.work / "sft")
        out = {}
        for method in ("baseline", "streaming", "in_memory"):
            r = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_restore.py"), "--child", method,
                                str(self.work)], capture_output=True, text=True, timeout=600,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
            if r.returncode != 0:
                raise RuntimeError(f"{method}: {r.stderr[-1500:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            out[f"{method}_s"], out[f"{method}_peak_mib"] = round(res["seconds"], 1), round(res["peak_mib"])
        floor = out.pop("baseline_peak_mib")
        out.pop("baseline_s")
        out["import_floor_mib"] = floor
        out["memory_above_floor_ratio"] = round((out["streaming_peak_mib"] - floor) /
                                                max(out["in_memory_peak_mib"] - floor, 1), 2)
        return out

    def kl_eval(self) -> dict:
        from ftscope.divergence import KLConfig, token_kl
        from ftscope.engines.hf import HFEngine, HFOptions
        from ftscope.evaluate import predict
        from ftscope.models import load_model

        base = load_model(str(self.work / "base"), "bfloat16" if self.device == "cuda" else "float32",
                          gpus=[0] if self.device == "cuda" else None)
        items, prompter = self.items(self.size["prompts"] * 4), self.prompter()
        sync = torch.cuda.synchronize if self.device == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        kl = token_kl(self.model, base, self.tok, items, prompter, KLConfig())
        sync()
        t_kl = time.perf_counter() - t0
        t0 = time.perf_counter()
        preds = predict(HFEngine(self.model, self.tok, HFOptions(), 1 << 20), self.tok, prompter, items, max_new_tokens=8)
        sync()
        t_eval = time.perf_counter() - t0
        return {"items": len(items), "kl_items_per_s": round(len(items) / t_kl), "mean_kl": round(
            sum(k for k, _ in kl) / len(kl), 4), "eval_items_per_s": round(len(items) / t_eval),
            "answered": sum(bool(p) for p in preds)}

    def run(self) -> dict:
        self.step("sft_bf16", self.sft_bf16)
        for name in ("zero3", "sampling", "restore", "kl_eval"):
            if self.results["sft_bf16"]["status"] != "ok":
                self.results[name] = {"status": "skipped", "why": "sft_bf16 failed: no cell to measure"}
                continue
            self.step(name, getattr(self, name))
            if self.results[name].get("status") == "ok" and self.results[name].get("why"):
                self.results[name]["status"] = "skipped"
        return self.results


class _Entry:
    dtype, trust_remote_code, use_safetensors = "bfloat16", False, True


def machine() -> dict:
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": time.strftime("%Y-%m-%d"), "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "python": sys.version.split()[0],
            "host_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def markdown(result: dict) -> str:
    m = result["machine"]
    flag = " --dry-run" if result["dry_run"] else ""
    lines = [f"{m['date']}: {m['gpu'] or 'CPU (dry run)'}, torch {m['torch']} (CUDA {m['cuda']}), transformers "
             f"{m['transformers']}, Python {m['python']}; `python benchmarks/gpu_check.py{flag}`",
             "", "| step | status | s | result |", "|---|---|---|---|"]
    for name, r in result["steps"].items():
        detail = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("status", "seconds", "where"))
        detail = " ".join(detail.replace("|", "/").split())  # one table row, whatever an error message holds
        lines.append(f"| {name} | {r['status']} | {r.get('seconds', '')} | {detail} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--dry-run", action="store_true", help="every step at toy size on the CPU")
    p.add_argument("--budget-s", type=float, default=480)
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, a.dry_run, a.budget_s)
    result = {"dry_run": a.dry_run, "steps": check.run(), "machine": machine()}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_check.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0 if all(r["status"] in ("ok", "skipped") for r in result["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
