"""Stable short hashes of whatever changes a result: configs, data, model files."""

import hashlib
import json
import os
from pathlib import Path

_DIGESTS: dict[tuple, str] = {}  # (path, inode, size, mtime, ctime) -> sha256: each file hashed once per process


def fingerprint(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's contents. Its size and times only decide whether this process hashed it already
    (ctime, which the kernel sets on every write and no user can set back, guards against an edit that
    keeps the size and restores the modification time): the contents decide the digest."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def files_fingerprint(paths: list[Path], root: Path | None = None) -> dict[str, str]:
    """{name: content digest} of local files, names relative to `root` when they lie under it (so the
    same data at another path has the same fingerprint)."""
    out = {}
    for p in sorted(set(map(Path, paths))):
        name = str(p)
        if root is not None:
            try:
                name = str(p.resolve().relative_to(Path(root).resolve()))
            except ValueError:
                pass
        out[name] = file_digest(p)
    return out


def model_fingerprint(path: str) -> str:
    """A local checkpoint: its config and the names and sizes of its files, and what it was made from when ftscope
    made it (`ftscope-source.txt`: a GGUF file's digest, a sandbox model's pretraining key, kernels included); a
    hub id: the id itself."""
    local = Path(path)
    if not local.is_dir():
        return fingerprint({"hub_id": path})
    files = {f.name: f.stat().st_size for f in sorted(local.iterdir()) if f.is_file()}
    config = (local / "config.json").read_text() if (local / "config.json").exists() else ""
    source = local / "ftscope-source.txt"
    return fingerprint({"files": files, "config": config, **({"source": source.read_text()} if source.is_file() else {})})
