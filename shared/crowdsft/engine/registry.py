"""A named registry: strategies, rules and evaluations are looked up by their CLI names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A dict of named entries whose failed look-ups list the names that exist."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an entry under ``name``."""

        def wrap(entry: T) -> T:
            self[name] = entry
            return entry

        return wrap

    def lookup(self, name: str) -> T:
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {sorted(self)}") from None
