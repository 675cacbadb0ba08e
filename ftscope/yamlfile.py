"""Reading the YAML a user writes (study configs, dataset descriptions) safely: bounded in size and in
alias expansion (a "billion laughs" file is refused in milliseconds, not expanded), with `extends:` /
`include:` chains resolved by one merge, and errors that name the file and never echo unbounded input."""

from pathlib import Path

import yaml

MAX_BYTES = 1 << 20  # a config or description over 1 MiB is not one a person wrote
MAX_NODES = 200_000  # mapping/list/scalar nodes after expanding aliases


class YamlError(ValueError):
    """A YAML file that cannot be used; the message names the file and says what to fix."""


def short(value, limit: int = 80) -> str:
    """repr() of a value cut to `limit` characters: what error messages may show of user input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + " ...]"


def _expanded_size(node, seen: dict) -> int:
    """Nodes the document would hold with every alias expanded, computed on the shared graph (each
    distinct node once), so an alias bomb is measured without being built."""
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = 1  # a recursive alias counts once
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, seen) for v in node.value)
    else:
        size = 1
    seen[key] = size
    return size


def load(path: Path, what: str = "file"):
    """The parsed contents of one YAML file (safe types only)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise YamlError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if size > MAX_BYTES:
        raise YamlError(f"{path}: the {what} is {size / 2**20:.1f} MiB; one over {MAX_BYTES >> 20} MiB is refused "
                        f"(is this the right file? data belongs in data files, not in the {what})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(f"{path}: not UTF-8 text (byte {e.start}); save the {what} as UTF-8") from None
    except IsADirectoryError:
        raise YamlError(f"{path}: is a directory, not a {what}") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}) > MAX_NODES:
                raise YamlError(f"{path}: the {what} expands to more than {MAX_NODES:,} values through its aliases "
                                f"(&anchor / *alias); write the values out or use fewer nested aliases")
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise YamlError(f"{path} is not valid YAML{where}: {problem}") from None


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested mappings merged key by key (lists and scalars replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_chain(path: Path, key: str, what: str, referrer: Path | None = None, seen: tuple = ()) -> dict:
    """A mapping whose `key` (extends: / include:) names another file of the same kind, relative to this
    one: that file's mapping with this one's merged over it, recursively."""
    if path.resolve() in seen:
        raise YamlError(f"{referrer}: {key}: {path} loops back to a file that includes it")
    if not path.is_file():
        where = f"{referrer}: {key}: " if referrer else ""
        raise YamlError(f"{where}{path} is a directory, not a YAML file" if path.is_dir() else
                        f"{where}{what} not found: {path}")
    raw = load(path, what)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise YamlError(f"{path}: the top level must be a mapping of fields, not a {type(raw).__name__}")
    parent = raw.pop(key, None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent.strip():
        raise YamlError(f"{path}: {key}: must name one file (a path relative to this one), got {short(parent)}")
    return merge(load_chain(path.parent / parent, key, what, path, seen + (path.resolve(),)), raw)
