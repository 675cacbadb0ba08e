"""A name -> thing table with errors that list what is known: metrics, methods, studies, data formats."""

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def unknown(what: str, name, known: Iterable[str]) -> str:
    """"unknown task 'inference'; did you mean 'nli'? known: ...": the closest known names first. `name` may be a
    list of names ("unknown methods ['magic']")."""
    known = sorted(set(map(str, known)))
    names = name if isinstance(name, list) else [name]
    close = list(dict.fromkeys(c for n in names for c in difflib.get_close_matches(str(n), known, n=3, cutoff=0.5)))
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return f"unknown {what} {name!r}; {hint}known: {', '.join(known) or 'none'}"


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add (or replace: a user's plug-in may override a shipped one) `item` under `name`."""
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(unknown(self.what, name, self._items))
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
