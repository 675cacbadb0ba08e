"""The `train:` section: how every method that trains (full SFT, LoRA, FTICL) trains. A schema only, so that
reading a config needs none of the training stack."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# transformers' schedulers that train with what ftscope passes (no evaluation set, no scheduler kwargs); written
# out, not imported: transformers' trainer stack takes seconds to import and `validate` must not.
# tests/test_trainer.py checks the list against the installed transformers.
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")


class TrainConfig(BaseModel):
    """The `train:` section, shared by every method that trains. Full fine-tuning uses `lr`; LoRA has
    its own rate in `lora:`."""
    model_config = ConfigDict(extra="forbid")
    epochs: float = Field(3, gt=0)
    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(128, gt=8)
    lr_scheduler: Literal[SCHEDULERS] = Field("linear", description="a transformers scheduler (tests/test_trainer.py "
                                                                     "checks that the Trainer takes each)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    bf16: bool = Field(True, description="bf16 mixed precision on GPUs; ignored on the CPU")
    checkpoint_each_epoch: bool = Field(False, description="lets a retried cell resume mid-training")
