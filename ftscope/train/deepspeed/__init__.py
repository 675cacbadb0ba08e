"""The DeepSpeed configs ftscope ships (zero3, zero3_offload), by name or a JSON file's path."""

from pathlib import Path

SHIPPED = Path(__file__).parent


def deepspeed_config(name: str) -> Path:
    """A shipped DeepSpeed config by name (zero3, zero3_offload), or a JSON file's path."""
    return SHIPPED / f"{name}.json" if (SHIPPED / f"{name}.json").is_file() else Path(name).resolve()
