"""Reading a study config: one YAML file (`extends:` another to share fields), validated against the schema of
its study kind (ftscope/schema.py). A user's own methods, metrics, studies or data formats are modules named
in `plugins:`, imported before the config is checked."""

import importlib
import importlib.util
import sys
from pathlib import Path

from pydantic import ValidationError

from ftscope import yamlfile
from ftscope.schema import CoreConfig, config_model
from ftscope.studies import STUDIES


class ConfigError(Exception):
    """A config that cannot run; `problems` lists every one, each saying what to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"- {p}" for p in problems))


def load_config(path: str | Path, overrides: dict | None = None) -> CoreConfig:
    """Parse and validate a study YAML; raise ConfigError listing every problem.

    A config may start with `extends: other.yaml` (relative to itself): it is that config with the
    fields given here merged over it, nested mappings merged key by key.
    """
    return parse_config(read_raw(Path(path)), overrides, base_dir=Path(path).parent)


def parse_config(raw: dict, overrides: dict | None = None, base_dir: Path = Path(".")) -> CoreConfig:
    """Validate an already-read config mapping (a resolved config sent to a cell run, say)."""
    raw = {**raw, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if isinstance(raw.get("datasets_dirs"), list):  # relative to the config file, like plugins
        raw["datasets_dirs"] = [str((base_dir / d).resolve()) for d in raw["datasets_dirs"]]
    problems = import_plugins(raw.get("plugins") or [], base_dir)
    if problems:
        raise ConfigError(problems)
    kind = raw.get("kind")
    if kind not in STUDIES:
        raise ConfigError([f"kind: {'missing' if kind is None else repr(kind)}; set the study kind, one of "
                           f"{', '.join(STUDIES.names())}"])
    try:
        return config_model(kind).model_validate(raw)
    except ValidationError as e:
        raise ConfigError([_describe(err) for err in e.errors()]) from None


def absolute_paths(raw: dict, base_dir: Path, cwd: Path | None = None) -> dict:
    """The config with its local paths made absolute, so that it means the same to a worker that starts
    elsewhere: directories relative to the working directory (as `ftscope run` reads them), plugins and
    datasets_dirs relative to the config file. URLs and hub ids are left alone."""
    cwd = cwd or Path.cwd()

    def local(p, base=cwd):
        return p if not isinstance(p, str) or "://" in p or Path(p).is_absolute() else str((base / p).resolve())

    out = dict(raw)
    for key in ("results_dir", "artifacts_dir", "cache_dir"):
        if key in out:
            out[key] = local(out[key])
    out["plugins"] = [local(p, base_dir) if str(p).endswith(".py") else p for p in out.get("plugins") or []]
    out["datasets_dirs"] = [local(d, base_dir) for d in out.get("datasets_dirs") or []]
    out["models"] = [{**m, **{k: local(m[k]) for k in ("deepspeed",) if k in m and m[k].endswith(".json")},
                      **({"path": local(m["path"])} if isinstance(m.get("path"), str) and (cwd / m["path"]).exists()
                         else {})} if isinstance(m, dict) else m for m in out.get("models") or []]
    if isinstance(out.get("data"), dict):
        out["data"] = {**out["data"], **{k: local(v) for k, v in out["data"].items()
                                         if k in ("path", "root") and isinstance(v, str) and (cwd / v).exists()}}
    return out


def resolved_raw(path: str | Path, overrides: dict | None = None) -> dict:
    """The config mapping as a worker should receive it: `extends:` merged, overrides applied, local
    paths absolute. Parsing it gives the same study as `load_config(path, overrides)`."""
    raw = read_raw(Path(path))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return absolute_paths(raw, Path(path).resolve().parent)


def import_plugins(plugins: list, base_dir: Path) -> list[str]:
    """Import each plug-in (a module name, or a .py file relative to the config); problems, if any."""
    problems = []
    for name in plugins:
        try:
            if str(name).endswith(".py"):
                path = (base_dir / name).resolve()
                spec = importlib.util.spec_from_file_location(f"ftscope_plugin_{path.stem}", path)
                if spec is None or not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 -- a plug-in can fail in any way; report it as a config problem
            problems.append(f"plugins: cannot import {name!r}: {type(e).__name__}: {e}")
    return problems


def read_raw(path: Path) -> dict:
    """The config mapping, with `extends:` resolved (one file over another, mappings merged key by key)."""
    try:
        return yamlfile.load_chain(path, "extends", "config file")
    except yamlfile.YamlError as e:
        raise ConfigError([str(e)]) from None


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    got = f" (got {yamlfile.short(err['input'])})" if err["type"] not in ("missing",) and \
        not isinstance(err["input"], dict) else ""
    return f"{where}: {err['msg']}{got}"
