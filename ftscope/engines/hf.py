"""`hf`: transformers models through ftscope's fast path (ftscope/generation.py): prompts sorted by length
into token-budget batches, one prefill per prompt shared by its samples, finished rows dropped, uniforms
drawn per prompt. Label scoring is one forward pass per batch, after the batch's common prefix when it is long
(k-shot prompts: the demonstrations)."""

import copy

import torch
from pydantic import BaseModel, ConfigDict, Field

from ftscope import generation
from ftscope.engines import EngineSpec, decode_dtype, register
from ftscope.machine import package_version
from ftscope.models import DTYPES, load_model, load_tokenizer


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(32, gt=0, description="prompts per forward pass when scoring label words")


class HFEngine:
    name = "hf"

    def __init__(self, model, tokenizer, options: HFOptions, token_budget: int):
        self.model, self.tok, self.options, self.token_budget = model, tokenizer, options, token_budget

    def generate(self, prompts, *, max_new_tokens, num_samples=1, temperature=None, seeds=None, stop="newline",
                 progress=None):
        return generation.generate(self.model, self.tok, prompts, max_new_tokens=max_new_tokens,
                                   num_samples=num_samples, temperature=temperature, seeds=seeds, stop=stop,
                                   token_budget=self.token_budget, progress=progress)

    @torch.no_grad()
    def label_logprobs(self, prompts, label_ids, progress=None):
        ids_of = torch.tensor(label_ids)
        out: list[list[float]] = []
        size = self.options.batch_size
        for start in range(0, len(prompts), size):
            inputs = generation.prompt_inputs(self.model, prompts[start:start + size], self.tok.pad_token_id)
            logits = self.model(**inputs, logits_to_keep=1).logits
            logp = torch.log_softmax(logits[:, -1].float(), -1)[:, ids_of.to(logits.device)]
            out += logp.cpu().tolist()
            if progress:
                progress(len(out), len(prompts))
        return out

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def open_hf(path: str, model_cfg, gpus, options: HFOptions, hf_model=None, token_budget: int = 65536) -> HFEngine:
    dtype = DTYPES[decode_dtype(model_cfg)]
    if hf_model is None:
        model = load_model(path, decode_dtype(model_cfg), model_cfg.trust_remote_code, gpus, model_cfg.use_safetensors)
    elif hf_model.dtype != dtype:  # a copy: the cell's own model keeps its dtype for what comes after
        model = copy.deepcopy(hf_model).to(dtype)
    else:
        model = hf_model
    return HFEngine(model.eval(), load_tokenizer(path, model_cfg.trust_remote_code), options, token_budget)


register(EngineSpec("hf", open_hf, HFOptions, version=lambda: package_version("transformers") or "?", in_memory=True))
