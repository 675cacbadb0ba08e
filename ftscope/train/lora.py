"""LoRA adapters (peft) for the methods that train them."""

from pydantic import BaseModel, ConfigDict, Field


class LoraConfig(BaseModel):
    """The `lora:` section."""
    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, gt=0)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field("all-linear", description="'all-linear': every decoder linear layer")
    lr: float = Field(1e-4, gt=0)


def wrap_lora(model, lora: LoraConfig):
    import peft  # deferred: peft takes seconds to import; only LoRA cells need it

    cfg = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg)
