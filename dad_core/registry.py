"""A name -> builder table, the way objectives, teachers and discretizers are chosen (timm's registry idea)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Builders by name: `@registry.register("name")` adds one; a config names it; --help lists them."""

    def __init__(self, field: str):
        self.field = field  # the config field naming an entry, for error messages ("teacher.kind")
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(fn: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.field} {name!r} is already registered")
            self._entries[name] = fn
            return fn
        return add

    def names(self) -> list[str]:
        return list(self._entries)

    def check(self, name: str) -> None:
        if name not in self._entries:
            raise ValueError(f"{self.field} must be one of {', '.join(self._entries)}, got {name!r}")

    def __getitem__(self, name: str) -> T:
        self.check(name)
        return self._entries[name]

    def remove(self, name: str) -> None:
        """Forget an entry (tests that register their own)."""
        self._entries.pop(name, None)
