"""The config reference (docs/config.md), generated from the schema: every YAML key with its type, default,
description and the module that declares it (each section lives beside the module that reads it).
`python -m ftscope.configdoc > docs/config.md` writes it again; tests/test_configdoc.py keeps it current."""

import json
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ftscope.schema import CoreConfig, config_model
from ftscope.studies import STUDIES


def _models_in(annotation) -> list[type[BaseModel]]:
    """The config models a field holds (itself, in a list, or in a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _type(annotation) -> str:
    """A field's type as a reader writes it: `int | None`, `list[str]`, `one of: raw, few_shot, chat`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return "one of: " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type(a) for a in args)}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else json.dumps(value)
    return "" if field.default is PydanticUndefined else json.dumps(field.default, default=str)


def rows(model: type[BaseModel], prefix: str = "", skip: set[str] = frozenset()) -> list[tuple]:
    """(key, type, default, description, module) of every field of `model`, nested models' fields after their own."""
    out = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = f"{prefix}{name}"
        inner = _models_in(field.annotation)
        doc = (inner[0].__doc__ or "").split("\n\n")[0] if inner and not field.description else ""
        description = " ".join((field.description or doc).split())
        out.append((key, _type(field.annotation), _default(field), description, model.__module__))
        for model_ in inner:
            many = typing.get_origin(field.annotation) is list or any(
                typing.get_origin(a) is list for a in typing.get_args(field.annotation))
            out += rows(model_, f"{key}[]." if many else f"{key}.")
    return out


def _table(rows_: list[tuple]) -> str:
    lines = ["| key | type | default | description | declared in |", "|---|---|---|---|---|"]
    for key, typ, default, description, module in rows_:
        cells = [f"`{key}`", typ, default, description, f"`{module}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def reference() -> str:
    """The whole reference: the keys every study has, then each study kind's own sections and its methods' (the
    kinds and methods ftscope ships; a plug-in's are its own)."""
    core = set(CoreConfig.model_fields)
    parts = ["# Config reference", "",
             "Generated from the schema by `python -m ftscope.configdoc > docs/config.md` (tests/test_configdoc.py "
             "fails when it is out of date). A config is one YAML file; `extends: other.yaml` merges it over another "
             "(nested mappings key by key). Keys marked `(section)` hold the keys listed below them.", "",
             "## Every study", "", _table(rows(CoreConfig))]
    for kind in sorted(k for k in STUDIES if STUDIES.get(k).run_cell.__module__.startswith("ftscope.")):
        model = config_model(kind)
        plugins = {name for name, f in model.model_fields.items()  # a plug-in's method section is its own to describe
                   if any(not m.__module__.startswith("ftscope.") for m in _models_in(f.annotation))}
        parts += ["", f"## `kind: {kind}`: {STUDIES.get(kind).title}", "",
                  _table(rows(model, skip=core | plugins))]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(reference())
