"""One rank of a multi-process training run (started by the launcher under torchrun or deepspeed):
trains with the Trainer under DeepSpeed ZeRO-3 and saves the gathered weights (or the LoRA adapter)
as safetensors."""

import json
import logging
import os
import sys

import torch
from transformers import AutoModelForCausalLM

from ftscope.models import DTYPES, load_tokenizer
from ftscope.progress import Progress, line_sink
from ftscope.train.lora import LoraConfig, wrap_lora
from ftscope.train.trainer import TrainConfig, train, training_arguments


def main(spec_path: str) -> None:
    rank0 = int(os.environ.get("RANK", "0")) == 0
    # the launcher streams stdout to the cell's log: the main rank's lines, and any rank's warnings
    logging.basicConfig(level=logging.INFO if rank0 else logging.WARNING, format="%(message)s", stream=sys.stdout)
    spec = json.loads(open(spec_path).read())
    tok = load_tokenizer(spec["base_path"], spec["trust_remote_code"])
    args = training_arguments(TrainConfig(**spec["train"]), spec["trainer_dir"], lr=spec["lr"], seed=spec["seed"],
                              deepspeed=json.loads(open(spec["deepspeed"]).read()))
    model = AutoModelForCausalLM.from_pretrained(spec["base_path"], dtype=DTYPES[spec["dtype"]],
                                                 trust_remote_code=spec["trust_remote_code"],
                                                 use_safetensors=spec.get("use_safetensors", True))
    if spec.get("lora"):
        model = wrap_lora(model, LoraConfig(**spec["lora"]))
    torch.manual_seed(spec["seed"])
    trainer = train(model, tok, spec["examples"], args, resume=spec["resume"],
                    progress=Progress("training", sinks=(line_sink(sys.stdout),) if rank0 else ()))
    trainer.save_model(spec["out_dir"])  # ZeRO-3: gathered to rank 0 and written as safetensors
    if rank0:
        tok.save_pretrained(spec["out_dir"])


if __name__ == "__main__":
    main(sys.argv[1])
