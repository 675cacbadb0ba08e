"""Reading and writing HF safetensors checkpoints one tensor at a time (never a whole model)."""

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

INDEX = "model.safetensors.index.json"


def checkpoint_dir(path: str) -> Path:
    """A local checkpoint directory for a local path or a hub id (from the local HF cache)."""
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import snapshot_download  # deferred: only hub ids need it

    return Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors"]))


def _safetensors_problem(f: Path) -> str | None:
    """A truncated or unreadable safetensors file, from its header alone (8 bytes of length, the JSON header,
    then the data the header says it holds)."""
    try:
        with open(f, "rb") as h:
            n = int.from_bytes(h.read(8), "little")
            if n <= 0 or n > 100 << 20:
                return f"{f.name}: not a safetensors file"
            header = json.loads(h.read(n))
    except (OSError, ValueError) as e:
        return f"{f.name}: unreadable ({type(e).__name__})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    size = f.stat().st_size
    return None if size >= 8 + n + end else f"{f.name}: truncated ({size:,} of {8 + n + end:,} bytes)"


def checkpoint_problem(ckpt: Path, use_safetensors: bool = True) -> str | None:
    """What is wrong with a checkpoint directory (no config, missing or truncated weights), or None. Reads
    file headers only, so it is cheap for a 70B checkpoint."""
    if not (ckpt / "config.json").is_file():
        return "no config.json"
    try:
        json.loads((ckpt / "config.json").read_text())
    except (ValueError, UnicodeDecodeError):
        return "config.json is not valid JSON"
    if (ckpt / INDEX).exists():
        try:
            shards = sorted(set(json.loads((ckpt / INDEX).read_text())["weight_map"].values()))
        except (ValueError, KeyError, UnicodeDecodeError):
            return f"{INDEX} is not a valid index"
        missing = [f for f in shards if not (ckpt / f).is_file()]
        if missing:
            return f"weight shards missing: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        files = [ckpt / f for f in shards]
    else:
        files = sorted(ckpt.glob("*.safetensors"))
        if not files:
            if not use_safetensors and list(ckpt.glob("pytorch_model*.bin")):
                return None
            return "no weights (model.safetensors)"
    return next((p for p in map(_safetensors_problem, files) if p), None)


def shard_files(ckpt: Path) -> list[Path]:
    if (ckpt / INDEX).exists():
        weight_map = json.loads((ckpt / INDEX).read_text())["weight_map"]
        return [ckpt / f for f in sorted(set(weight_map.values()))]
    files = sorted(ckpt.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{ckpt}: no safetensors files")
    return files


def tensor_names(ckpt: Path) -> dict[str, Path]:
    """Tensor name -> the shard that holds it."""
    out = {}
    for f in shard_files(ckpt):
        with safe_open(f, "pt") as h:
            out.update({k: f for k in h.keys()})
    return out


def iter_pairs(base: Path, ft: Path, names: list[str]) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, base tensor, fine-tuned tensor), loaded lazily one pair at a time, in their stored dtype."""
    base_map, ft_map = tensor_names(base), tensor_names(ft)
    for name in names:
        with safe_open(base_map[name], "pt") as hb, safe_open(ft_map[name], "pt") as hf:
            yield name, hb.get_tensor(name), hf.get_tensor(name)


def numel(ckpt: Path, names: list[str]) -> int:
    """Element count of the named tensors, read from the shard headers alone."""
    where, n = tensor_names(ckpt), 0
    for name in names:
        with safe_open(where[name], "pt") as h:
            n += math.prod(h.get_slice(name).get_shape())
    return n


class ShardWriter:
    """Writes tensors into shards of at most `max_bytes` plus an index, like save_pretrained does."""

    def __init__(self, out: Path, max_bytes: int = 1 << 30):
        self.out, self.max_bytes = out, max_bytes
        self.buf: dict[str, torch.Tensor] = {}
        self.size, self.files, self.weight_map = 0, [], {}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, tensor: torch.Tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self.buf and self.size + nbytes > self.max_bytes:
            self._flush()
        self.buf[name] = tensor.contiguous()
        self.size += nbytes

    def _flush(self) -> None:
        name = f"model-{len(self.files) + 1:05d}.safetensors"
        save_file(self.buf, str(self.out / name), metadata={"format": "pt"})
        self.weight_map.update({k: name for k in self.buf})
        self.files.append(name)
        self.buf, self.size = {}, 0

    def close(self, source: Path) -> None:
        """Flush, write the index, and copy config and tokenizer files from `source`."""
        if self.buf:
            self._flush()
        (self.out / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": self.weight_map}, indent=1))
        for f in source.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != INDEX:
                shutil.copy2(f, self.out / f.name)
