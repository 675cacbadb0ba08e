"""A study, as one YAML file: pydantic schemas whose errors say which field to fix and how.

The schema is assembled when a config is read: the core fields below, the sections of the study kind
it names (`kind: k` -> ftscope/studies/k.py) and those of every registered method (ftscope/methods/).
Each section lives beside the module that reads it. A user's own methods, metrics, studies or data
formats are modules named in `plugins:`, imported before the config is checked.
"""

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from ftscope.prompts import PromptConfig
from ftscope.sandbox.pretrain import SandboxModel
from ftscope.train.trainer import TrainConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    path: str | None = Field(None, description="hub id or local directory")
    sandbox: SandboxModel | None = None
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    use_safetensors: bool = Field(True, description="load weights only from safetensors (never unpickle)")
    processes: int = Field(1, ge=1, description="ranks per training run; >1 runs DeepSpeed ZeRO-3 in a subprocess")
    gpus: int = Field(0, ge=0, description="GPUs one cell of this model holds (0: CPU)")
    launcher: Literal["torchrun", "deepspeed"] = "torchrun"
    deepspeed: str = Field("zero3", description="DeepSpeed config for processes > 1: zero3, zero3_offload (shipped "
                                                "in ftscope/train/deepspeed/) or a JSON file")
    timeout_s: float | None = Field(None, gt=0, description="limit on a multi-process training run")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.sandbox is None):
            raise ValueError(f"model '{self.name}': set exactly one of 'path' (hub id or local dir) or 'sandbox'")
        return self


class GenerationConfig(_Strict):
    """How answers are decoded (every study). `token_budget` sizes a batch: prompt plus answer tokens
    over all its rows."""
    backend: Literal["hf"] = "hf"
    token_budget: int = Field(65536, gt=0)
    samples_per_second: float | None = Field(None, gt=0, description="throughput for `validate`'s cost "
                                                                       "estimate; `validate --calibrate` measures it")


class ClusterConfig(_Strict):
    """With `dispatch: deployments`, how a cell becomes a run of the cell deployment (prefect.yaml)."""
    deployment: str = Field("cell/cell", description="flow name/deployment name of the single-cell flow")
    job_variables: dict = Field(default_factory=dict, description="for every cell run: image, env, ... as the "
                                                                   "work pool's job template takes them")
    gpu_variable: str | None = Field(None, description="the job variable that takes a cell's GPU count (the "
                                                       "Kubernetes template in infra/k8s: gpus); none for process pools")
    poll_s: float = Field(5, gt=0, description="how often the study checks on its cell runs")


class CoreConfig(_Strict):
    kind: str = Field(description="the study kind: k (knowledge) or g (generalization), or a plug-in's")
    study: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="name; results and artifacts "
                                                                                "go under it")
    results_dir: str = Field(description="local path or fsspec URL (s3://...) of the Parquet store")
    artifacts_dir: str = Field("artifacts", description="checkpoints of cells (deleted unless keep_checkpoints)")
    cache_dir: str = Field(".cache/ftscope", description="prepared data and pretrained sandbox models")
    keep_checkpoints: bool = False
    workers: int = Field(1, ge=1, description="cells run at once by this flow")
    gpu_slots: int = Field(1, ge=1, description="GPUs that cells may hold at once (Prefect global limit)")
    dispatch: Literal["local", "deployments"] = Field("local", description="local: cells are tasks of the study "
                                                      "flow; deployments: each cell is a run of the cell deployment")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: the cores this process may use)")
    plugins: list[str] = Field(default_factory=list, description="modules or .py files to import first")
    datasets_dirs: list[str] = Field(default_factory=list, description="directories of your own dataset YAMLs")
    models: list[ModelConfig] = Field(min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @field_validator("study")
    @classmethod
    def _safe_name(cls, v):
        if v in (".", "..") or v.startswith("."):
            raise ValueError("must not start with a dot: it names folders under results_dir and artifacts_dir")
        return v

    def model(self, name: str) -> ModelConfig:
        """The model entry called `name`."""
        return next(m for m in self.models if m.name == name)

    @model_validator(mode="after")
    def _consistent(self):
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for m in self.models:
            if m.gpus > self.gpu_slots:
                raise ValueError(f"model '{m.name}' needs {m.gpus} GPUs per cell but gpu_slots is {self.gpu_slots}")
            if m.gpus and m.processes != m.gpus:
                raise ValueError(f"model '{m.name}': processes ({m.processes}) must equal gpus ({m.gpus}), one rank per GPU")
        return self


_MODELS: dict[tuple, type[CoreConfig]] = {}


def config_model(kind: str) -> type[CoreConfig]:
    """The full schema of a study kind: core fields + the study's sections + every method's section."""
    from ftscope.methods import RECIPES
    from ftscope.studies import STUDIES

    study = STUDIES.get(kind)
    sections = dict(study.sections)
    for name in RECIPES:
        section = RECIPES.get(name).section
        if section and section[0] not in sections:
            sections[section[0]] = section[1]
    key = (kind, tuple((k, id(v)) for k, v in sorted(sections.items())))
    if key not in _MODELS:
        fields = {k: (v, Field(default_factory=v)) for k, v in sections.items()}
        name = f"StudyConfig_{kind}_{len(_MODELS)}"
        model = create_model(name, __base__=CoreConfig, **fields)
        setattr(sys.modules[__name__], name, model)  # picklable by reference, like a class written here
        _MODELS[key] = model
    return _MODELS[key]


StudyConfig = CoreConfig  # for annotations: a config is a CoreConfig with its study's and methods' sections


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
    from ftscope.studies import STUDIES

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


def read_raw(path: Path, seen: tuple = ()) -> dict:
    """The config mapping, with `extends:` resolved."""
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    if path.resolve() in seen:
        raise ConfigError([f"{path}: 'extends' loops back to itself"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text (byte {e.start}); save the config as UTF-8"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path} is not valid YAML: {e}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of fields (study:, models:, ...), "
                           f"not a {type(raw).__name__}"])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return merge(read_raw(path.parent / parent, seen + (path.resolve(),)), raw)


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    got = f" (got {err['input']!r})" if err["type"] not in ("missing",) and not isinstance(err["input"], dict) else ""
    return f"{where}: {err['msg']}{got}"
