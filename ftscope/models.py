"""Loading models and tokenizers by hub id or local path, and saving them as HF checkpoints."""

import logging
import threading

import torch

from ftscope import attention, gguf
from ftscope.sandbox.pretrain import build_sandbox_model, pretrain_threads
from ftscope.sources import PACKAGE, resolve

_LOAD_LOCK = threading.Lock()  # from_pretrained's meta-device init is not thread-safe
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer  # deferred: transformers takes seconds to import; most commands never do

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str = "float32", trust_remote_code: bool = False, gpus: list[int] | None = None,
               use_safetensors: bool = True):
    """For evaluation and analysis: on one GPU, or spread layer by layer over several (a 70B model
    in bf16 does not fit one), or on the CPU when there is no GPU. Weights load from safetensors only
    (pickled weights can run code) unless the model entry opts out."""
    from transformers import AutoModelForCausalLM  # deferred: as above, and its model code more
    from transformers.utils import logging as hf_logging  # deferred: as above

    hf_logging.disable_progress_bar()
    if trust_remote_code:
        logging.getLogger("ftscope.models").warning("trust_remote_code is on: %s runs its own Python code", path)
    placement = {}
    if gpus and len(gpus) > 1:
        placement = {"device_map": "auto", "max_memory": {
            g: f"{int(torch.cuda.get_device_properties(g).total_memory * 0.85 / 2**30)}GiB" for g in gpus}}
    with _LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                                                     use_safetensors=use_safetensors, **placement)
    if not placement:
        model = model.to(f"cuda:{gpus[0]}" if gpus else default_device())
    if attention.wants_gqa(model.config, on_cpu=model.device.type == "cpu"):
        model.set_attn_implementation(attention.register())
    return model.eval()


def base_model_path(cfg, model_cfg, data) -> str:
    """The base checkpoint of a model of study `cfg`: a hub id or local dir as given, the (cached) dense conversion
    of a GGUF file, or the (cached) pretrained sandbox model."""
    if model_cfg.sandbox is not None:
        return build_sandbox_model(model_cfg.sandbox, data, cfg.cache_dir, pretrain_threads(cfg))
    if gguf.is_gguf(model_cfg.path):
        return gguf.dense_checkpoint(model_cfg.path, cfg.cache_dir)
    return str(resolve(model_cfg.path)) if model_cfg.path.startswith(PACKAGE) else model_cfg.path


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
