"""Registries of policy elements, filled by class decorators (after Cloud Custodian's `PluginRegistry`).

A policy file names a filter or an action by its `type:`; the registry maps that name to the class that
validates and runs it. Registering checks that the class's `type` field is `Literal[name]`, so the
generated JSON schema, the docs and the YAML always agree on the name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, get_args

from pydantic import BaseModel

__all__ = ["Registry"]

E = TypeVar("E", bound=BaseModel)


class Registry(Generic[E]):
    """Name -> element class, for one kind of element ("filter" or "action")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[E]] = {}

    def register(self, name: str) -> Callable[[type[E]], type[E]]:
        """Class decorator: `@FILTERS.register("spans-tiers")`."""

        def decorate(cls: type[E]) -> type[E]:
            if name in self._classes:
                taken = self._classes[name].__name__
                raise ValueError(f"{self.kind} {name!r} is already registered by {taken}")
            field = cls.model_fields.get("type")
            if field is None or get_args(field.annotation) != (name,):
                raise TypeError(f"{cls.__name__} must declare `type: Literal[{name!r}]`"
                                f" to register as {name!r}")
            self._classes[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[E] | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __iter__(self) -> Iterator[tuple[str, type[E]]]:
        """(name, class) pairs in name order, so schemas and listings are stable."""
        return iter(sorted(self._classes.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._classes

