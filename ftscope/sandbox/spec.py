"""What the sandbox's small model is (a model entry's `sandbox:` section): a schema only, so that reading a
config needs none of the training stack."""

from pydantic import BaseModel, ConfigDict, Field


class SandboxModel(BaseModel):
    """A small Llama pretrained on the sandbox corpus on the CPU (a model entry's `sandbox:`)."""
    model_config = ConfigDict(extra="forbid")
    hidden_size: int = Field(256, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    intermediate_size: int = Field(512, gt=0)
    max_positions: int = Field(512, gt=8, description="longest sequence (prompt with demonstrations + answer)")
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(64, gt=0)
    block_size: int = Field(64, gt=8)
    lr: float = Field(2e-3, gt=0)
    seed: int = 0
    seeds: list[int] | None = Field(None, min_length=1, description="pretrain one base model per seed: the entry "
                                    "becomes one model per seed (<name>.s<seed>), replicas of one family that the "
                                    "report pools (a bootstrap over base models, then test items)")
