"""What every rank of a multi-process training run executes (started by ftscope.train.launcher):
`python -m ftscope.train.worker SPEC.json`. Trains with DeepSpeed through the same `train()` as the
in-process path and saves the gathered weights (or the LoRA adapter) as safetensors."""

import json
import os
import sys

import torch

from ftscope.config import LoraConfig, TrainConfig
from ftscope.models import DTYPES, load_tokenizer
from ftscope.train.trainer import train, training_arguments, wrap_lora


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(spec["base_path"], spec["trust_remote_code"])
    args = training_arguments(TrainConfig(**spec["train"]), spec["trainer_dir"], lr=spec["lr"], seed=spec["seed"],
                              deepspeed=json.loads(open(spec["deepspeed"]).read()))
    model = AutoModelForCausalLM.from_pretrained(spec["base_path"], dtype=DTYPES[spec["dtype"]],
                                                 trust_remote_code=spec["trust_remote_code"])
    if spec["method"] == "lora":
        model = wrap_lora(model, LoraConfig(**spec["lora"]))
    torch.manual_seed(spec["seed"])
    trainer = train(model, tok, spec["examples"], args, resume=spec["resume"])
    trainer.save_model(spec["out_dir"])  # ZeRO-3: gathered to rank 0 and written as safetensors
    if int(os.environ.get("RANK", "0")) == 0:
        tok.save_pretrained(spec["out_dir"])


if __name__ == "__main__":
    main(sys.argv[1])
