"""Stable short hashes of whatever changes a result: configs, data, model files."""

import hashlib
import json
from pathlib import Path


def fingerprint(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_fingerprint(path: str) -> str:
    """A local checkpoint: its config and the names and sizes of its files; a hub id: the id itself."""
    local = Path(path)
    if not local.is_dir():
        return fingerprint({"hub_id": path})
    files = {f.name: f.stat().st_size for f in sorted(local.iterdir()) if f.is_file()}
    config = (local / "config.json").read_text() if (local / "config.json").exists() else ""
    return fingerprint({"files": files, "config": config})
