"""The schema of a study config: pydantic models whose errors say which field to fix and how.

The full schema of a config is assembled when it is read: the core fields below, the sections of the study
kind it names (`kind: k` -> ftscope/studies/k/config.py) and those of every registered method (ftscope/methods/).
Each section lives beside the module that reads it."""

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ftscope.engines import ENGINES
from ftscope.measurements import MEASUREMENTS
from ftscope.methods import RECIPES
from ftscope.prompts import PromptConfig
from ftscope.registry import unknown
from ftscope.sandbox.spec import SandboxModel
from ftscope.studies import STUDIES
from ftscope.train.config import TrainConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    path: str | None = Field(None, description="hub id, local directory, or GGUF file (a path, or "
                                                "package:NAME/FILE for a file inside an installed Python package), "
                                                "converted once to a dense checkpoint in cache_dir")
    sandbox: SandboxModel | None = None
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    decode_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="the weights' dtype while an engine decodes (mastery, evaluation, Study G's scoring); default: "
                          "dtype. bfloat16 decodes a float32 model faster on CPUs with AVX-512 BF16 and on GPUs, while "
                          "training, KL and parameter change keep `dtype` (a float32 model trained in bfloat16 "
                          "weights loses its small updates)")
    family: str | None = Field(None, description="models of one family are replicas of one model (base models "
                                                 "pretrained with other seeds): the report pools their cells")
    backend: str | None = Field(None, description="the generation engine of this model (default: generation.backend)")
    samples_per_second: float | dict[str, float] | None = Field(
        None, description="this model's generation throughput per GPU for `validate`'s cost estimate (one number, or "
                          "engine -> number); default: generation.samples_per_second")
    trust_remote_code: bool = False
    use_safetensors: bool = Field(True, description="load weights only from safetensors (never unpickle)")
    processes: int = Field(1, ge=1, description="ranks per training run; >1 runs DeepSpeed ZeRO-3 in a subprocess")
    gpus: int = Field(0, ge=0, description="GPUs one cell of this model holds (0: CPU)")
    launcher: Literal["torchrun", "deepspeed"] = "torchrun"
    deepspeed: str = Field("zero3", description="DeepSpeed config for processes > 1: zero3, zero3_offload (shipped "
                                                "in ftscope/train/deepspeed/) or a JSON file")
    timeout_s: float | None = Field(None, gt=0, description="limit on a multi-process training run")
    job_variables: dict = Field(default_factory=dict, description="with dispatch: deployments, job variables of this "
                                "model's runs over cluster.job_variables (memory, node_selector, tolerations, ...)")
    work_queue: str | None = Field(None, description="with dispatch: deployments, the work queue of this model's runs "
                                   "(a queue per GPU shape, served by the workers of nodes of that shape); its GPUs "
                                   "are counted by the limit ftscope-gpus-<queue>")

    @field_validator("backend")
    @classmethod
    def _known_engine(cls, v):
        if v is not None and v not in ENGINES:
            raise ValueError(unknown("engine", v, ENGINES))
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.sandbox is None):
            raise ValueError(f"model '{self.name}': set exactly one of 'path' (hub id or local dir) or 'sandbox'")
        return self


class GenerationConfig(_Strict):
    """How answers are decoded (every study): the engine (ftscope/engines/), its settings, and what the
    cost estimate assumes. `token_budget` sizes a batch of the hf engine: prompt plus answer tokens over all
    its rows."""
    backend: str = Field("hf", description="the engine every model decodes with unless its entry names one: hf "
                                           "(transformers, ftscope's fast path) or vllm")
    options: dict[str, dict] = Field(default_factory=dict, description="engine name -> its settings (vllm: "
                                     "gpu_memory_utilization, kv_cache_gib, max_model_len, enforce_eager)")
    token_budget: int = Field(65536, gt=0)
    samples_per_second: float | dict[str, float] | None = Field(
        None, description="throughput for `validate`'s cost estimate, per GPU (or per CPU machine): one number, "
                          "or engine -> number; `validate --calibrate` measures it here")

    @field_validator("backend")
    @classmethod
    def _known_engine(cls, v):
        if v not in ENGINES:
            raise ValueError(unknown("engine", v, ENGINES))
        return v

    @model_validator(mode="after")
    def _options(self):
        for name, options in self.options.items():
            if name not in ENGINES:
                raise ValueError(f"options.{name}: {unknown('engine', name, ENGINES)}")
            ENGINES.get(name).options(**options)
        return self


class ClusterConfig(_Strict):
    """With `dispatch: deployments`, how a cell becomes a run of the cell deployment (prefect.yaml)."""
    deployment: str = Field("cell/cell", description="flow name/deployment name of the single-cell flow")
    job_variables: dict = Field(default_factory=dict, description="for every cell run: image, env, ... as the "
                                                                   "work pool's job template takes them")
    gpu_variable: str | None = Field(None, description="the job variable that takes a cell's GPU count (the "
                                                       "Kubernetes template in infra/k8s: gpus); none for process pools")
    prepare_deployment: str = Field("prepare/prepare", description="flow name/deployment name of a base model's "
                                    "preparation (Study K: mastery), dispatched with the model's GPUs")
    poll_s: float = Field(5, gt=0, description="how often the study checks on its cell runs")
    start_timeout_s: float = Field(900, gt=0, description="a run a worker picked up (Pending or Running) that has not "
                                   "taken its cell's claim this long after counts as lost (its node died before the "
                                   "cell began) and is dispatched again; raise it where pods wait long for GPU nodes")
    lost_after_s: float = Field(600, ge=60, description="a run whose heartbeats (PREFECT_FLOWS_HEARTBEAT_FREQUENCY on "
                                "the workers, default 180 s) stop this long is marked Crashed by the server")
    redispatch: int = Field(2, ge=0, description="times a run whose node was lost is dispatched again")
    study_restarts: int = Field(3, ge=0, description="times a study whose own node was lost is resumed by the "
                                "server on another worker")
    batch_variants: bool = Field(True, description="run the cells that start from a cell (restore's k and "
                                 "strategies) in that cell's job, one after the other, instead of one job each")
    job_start_s: float = Field(60, ge=0, description="start-up of one job (pod, imports, loading) for validate's "
                               "cost lines")


class CoreConfig(_Strict):
    kind: str = Field(description="the study kind: k (knowledge) or g (generalization), or a plug-in's")
    study: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=100,
                       description="name; results and artifacts go under it (at most 100 characters: it is part "
                                   "of file names)")
    results_dir: str = Field(description="local path or fsspec URL (s3://...) of the Parquet store")
    artifacts_dir: str = Field("artifacts", description="checkpoints of cells (deleted unless keep_checkpoints)")
    cache_dir: str = Field(".cache/ftscope", description="prepared data and pretrained sandbox models")
    keep_checkpoints: bool = False
    workers: int | None = Field(None, ge=1, description="cells run at once by this flow (default: 1; with dispatch: "
                                "deployments, every cell whose parent is done: the work pool and GPU limits decide)")
    gpu_slots: int = Field(1, ge=1, description="GPUs that cells may hold at once: the size of the Prefect limit "
                           "ftscope-gpus (per work queue: ftscope-gpus-<queue>) when ftscope creates it; a limit "
                           "that exists is never changed")
    dispatch: Literal["local", "deployments"] = Field("local", description="local: cells are tasks of the study "
                                                      "flow; deployments: each cell is a run of the cell deployment")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: the cores this process may use)")
    reproducible: bool = Field(False, description="pin CPU kernels to AVX2 and use deterministic algorithms, so that "
                                                  "machines of one kind give bitwise the same numbers "
                                                  "(ftscope/reproducible.py)")
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

    @model_validator(mode="before")
    @classmethod
    def _replicas(cls, raw):
        """A model entry whose sandbox lists `seeds` becomes one entry per seed, of one family."""
        models = raw.get("models") if isinstance(raw, dict) else None
        if not isinstance(models, list):
            return raw
        out = []
        for m in models:
            sandbox = m.get("sandbox") if isinstance(m, dict) else None
            seeds = sandbox.get("seeds") if isinstance(sandbox, dict) else None
            if not isinstance(seeds, list) or not seeds:
                out.append(m)
                continue
            base = {k: v for k, v in sandbox.items() if k != "seeds"}
            out += [{**m, "name": f"{m.get('name')}.s{s}", "family": m.get("family") or m.get("name"),
                     "sandbox": {**base, "seed": s}} for s in seeds]
        return {**raw, "models": out}

    @field_validator("datasets_dirs")
    @classmethod
    def _directories(cls, v):
        missing = [d for d in v if not Path(d).is_dir()]
        if missing:
            raise ValueError(f"not a directory: {', '.join(missing)} (relative paths are relative to the config file)")
        return v

    def model(self, name: str) -> ModelConfig:
        """The model entry called `name`."""
        return next(m for m in self.models if m.name == name)

    @property
    def in_flight(self) -> int:
        """Cells this flow runs (or dispatches) at once."""
        return self.workers or (1 if self.dispatch == "local" else 256)

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
    """The full schema of a study kind: core fields + the study's sections + every method's section + every plug-in
    measurement's section (absent unless given: a measurement runs where the config has its section)."""
    study = STUDIES.get(kind)
    sections = dict(study.sections)
    for name in RECIPES:
        section = RECIPES.get(name).section
        if section and section[0] not in sections:
            sections[section[0]] = section[1]
    optional = {m.section[0]: m.section[1] for name in MEASUREMENTS if (m := MEASUREMENTS.get(name)).section
                and m.section[0] not in sections}
    key = (kind, tuple((k, id(v)) for k, v in sorted({**sections, **optional}.items())))
    if key not in _MODELS:
        fields = {k: (v, Field(default_factory=v)) for k, v in sections.items()}
        fields |= {k: (v | None, Field(None)) for k, v in optional.items()}
        name = f"StudyConfig_{kind}_{len(_MODELS)}"
        model = create_model(name, __base__=CoreConfig, **fields)
        setattr(sys.modules[__name__], name, model)  # picklable by reference, like a class written here
        _MODELS[key] = model
    return _MODELS[key]
