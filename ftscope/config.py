"""A study, as one YAML file: a pydantic schema whose errors say which field to fix and how."""

from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftscope.data.relations import ID_RELATIONS, RELATIONS

Level = Union[Literal[0, 1, 2, 3, 4], Literal["mixed"]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SandboxWorld(_Strict):
    """Size and exposure spread of the generated world (see ftscope/data/sandbox.py)."""
    seed: int = 0
    facts_per_id_relation: int = Field(300, gt=0)
    facts_per_ood_relation: int = Field(40, gt=0)
    format_facts_per_relation: int = Field(40, ge=0)
    exposures: list[int] = Field(default_factory=lambda: [0, 0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32])
    format_exposure: int = Field(8, ge=1)
    format_questions: int = Field(3, ge=1, le=21)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    n_cities: int = Field(300, ge=10)
    n_countries: int = Field(60, ge=5)
    n_people: int = Field(150, ge=10)

    @field_validator("exposures")
    @classmethod
    def _nonneg(cls, v):
        if not v or min(v) < 0:
            raise ValueError("exposures must be a non-empty list of counts >= 0")
        return v


class DataConfig(_Strict):
    source: Literal["sandbox", "entityquestions"] = "sandbox"
    sandbox: SandboxWorld = Field(default_factory=SandboxWorld)
    path: str | None = Field(None, description="EntityQuestions: a local directory or a HF dataset id")
    id_relations: list[str] = Field(default_factory=lambda: list(ID_RELATIONS))
    max_test_items: int | None = Field(None, gt=0, description="cap per domain (id, ood), sampled")

    @field_validator("id_relations")
    @classmethod
    def _known(cls, v):
        bad = [r for r in v if r not in RELATIONS]
        if bad:
            raise ValueError(f"unknown relations {bad}; known: {sorted(RELATIONS)}")
        return v

    @model_validator(mode="after")
    def _path_for_eq(self):
        if self.source == "entityquestions" and not self.path:
            raise ValueError("data.source 'entityquestions' needs data.path (a local dir or a HF dataset id)")
        return self


class PromptConfig(_Strict):
    """How a question becomes model input: a raw template, a few-shot prefix, or a chat template."""
    style: Literal["raw", "few_shot", "chat"] = "raw"
    template: str = "Question: {question}\nAnswer:"
    few_shot_prefix: str = ""

    @field_validator("template")
    @classmethod
    def _has_slot(cls, v):
        if "{question}" not in v:
            raise ValueError("prompt.template must contain '{question}'")
        return v


class SandboxModel(_Strict):
    """A small Llama pretrained on the sandbox corpus on the CPU."""
    hidden_size: int = Field(256, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    intermediate_size: int = Field(512, gt=0)
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(64, gt=0)
    block_size: int = Field(64, gt=8)
    lr: float = Field(2e-3, gt=0)
    seed: int = 0


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | None = Field(None, description="hub id or local directory")
    sandbox: SandboxModel | None = None
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    processes: int = Field(1, ge=1, description="ranks per training run; >1 runs DeepSpeed ZeRO-3 in a subprocess")
    gpus: int = Field(0, ge=0, description="GPUs one cell of this model holds (0: CPU)")
    launcher: Literal["torchrun", "deepspeed"] = "torchrun"
    deepspeed: str = Field("infra/deepspeed/zero3.json", description="DeepSpeed config for processes > 1")
    timeout_s: float | None = Field(None, gt=0, description="limit on a multi-process training run")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.sandbox is None):
            raise ValueError(f"model '{self.name}': set exactly one of 'path' (hub id or local dir) or 'sandbox'")
        return self


class MasteryConfig(_Strict):
    n_map: int = Field(21, ge=1, le=21)
    n_sample: int = Field(10, ge=1)
    temperature: float = Field(0.7, gt=0)
    max_new_tokens: int = Field(8, gt=0)
    batch_size: int = Field(512, gt=0)


class TrainConfig(_Strict):
    epochs: float = Field(3, gt=0)
    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(128, gt=8)
    lr_scheduler: str = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    bf16: bool = Field(True, description="bf16 mixed precision on GPUs; ignored on the CPU")
    checkpoint_each_epoch: bool = Field(False, description="lets a retried cell resume mid-training")


class LoraConfig(_Strict):
    r: int = Field(8, gt=0)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field("all-linear", description="'all-linear': every decoder linear layer")
    lr: float = Field(1e-4, gt=0)


class EvalConfig(_Strict):
    max_new_tokens: int = Field(16, gt=0)
    batch_size: int = Field(128, gt=0)


class KLConfig(_Strict):
    """Token-level KL: KL(p_ft || p_base) ('ft_base') or KL(p_base || p_ft) ('base_ft'), at the
    positions that predict answer tokens ('answer'), only the first one, or every position."""
    direction: Literal["ft_base", "base_ft"] = "ft_base"
    positions: Literal["answer", "first_answer", "all"] = "answer"
    batch_size: int = Field(32, gt=0)


class ParamsConfig(_Strict):
    """Parameter change: region of the model, relative or absolute change."""
    region: Literal["transformer", "attention", "mlp", "all"] = "transformer"
    measure: Literal["relative", "absolute"] = "relative"


class RestoreConfig(_Strict):
    """Restoration of an SFT cell's most-changed parameters (method `restore`)."""
    k_percent: list[float] = Field(default_factory=lambda: [1, 3, 5, 10, 20, 40, 60])
    strategies: list[Literal["top", "bottom", "random"]] = Field(default_factory=lambda: ["top"])

    @field_validator("k_percent")
    @classmethod
    def _percent(cls, v):
        if not v or any(not 0 < k <= 100 for k in v):
            raise ValueError("k_percent must be a non-empty list of percentages in (0, 100]")
        return v


class GridConfig(_Strict):
    levels: list[Level] = Field(default_factory=lambda: [0, 1, 2, 3, 4, "mixed"])
    sample_counts: list[int] = Field(default_factory=lambda: [60, 120, 240, 480, 960, 1920])
    methods: list[Literal["base", "sft", "lora", "restore"]] = Field(default_factory=lambda: ["base", "sft"])
    seeds: list[int] = Field(default_factory=lambda: [0])

    @field_validator("sample_counts")
    @classmethod
    def _positive(cls, v):
        if not v or min(v) <= 0:
            raise ValueError("sample_counts must be a non-empty list of positive counts")
        return v


class StudyConfig(_Strict):
    study: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    results_dir: str = Field(description="local path or fsspec URL (s3://...) of the Parquet store")
    artifacts_dir: str = Field("artifacts", description="checkpoints of cells (deleted unless keep_checkpoints)")
    cache_dir: str = Field(".cache/ftscope", description="pretrained sandbox models, reused across studies")
    keep_checkpoints: bool = False
    workers: int = Field(1, ge=1, description="cells run at once on this machine")
    gpu_slots: int = Field(1, ge=1, description="GPUs that cells may hold at once (Prefect global limit)")
    data: DataConfig = Field(default_factory=DataConfig)
    models: list[ModelConfig] = Field(min_length=1)
    mastery: MasteryConfig = Field(default_factory=MasteryConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    params: ParamsConfig = Field(default_factory=ParamsConfig)
    restore: RestoreConfig = Field(default_factory=RestoreConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

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
        if "restore" in self.grid.methods and "sft" not in self.grid.methods:
            raise ValueError("grid.methods: 'restore' edits the checkpoints of 'sft' cells; add 'sft'")
        return self


class ConfigError(Exception):
    """A config that cannot run; `problems` lists every one, each saying what to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"- {p}" for p in problems))


def load_config(path: str | Path, overrides: dict | None = None) -> StudyConfig:
    """Parse and validate a study YAML; raise ConfigError listing every problem.

    A config may start with `extends: other.yaml` (relative to itself): it is that config with the
    fields given here merged over it, nested mappings merged key by key.
    """
    raw = _read_yaml(Path(path), seen=())
    raw.update(overrides or {})
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError([_describe(err) for err in e.errors()]) from None


def _read_yaml(path: Path, seen: tuple) -> dict:
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    if path.resolve() in seen:
        raise ConfigError([f"{path}: 'extends' loops back to itself"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError([f"{path} is not valid YAML: {e}"]) from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return _merge(_read_yaml(path.parent / parent, seen + (path.resolve(),)), raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    got = f" (got {err['input']!r})" if err["type"] not in ("missing",) and not isinstance(err["input"], dict) else ""
    return f"{where}: {err['msg']}{got}"
