"""Named registries of models, one per family, so a new model is one module.

A family (weather backbones now; WGAST, terratorch tasks and LOAN later) creates one
:class:`Registry` and each model module registers its class with
``@FAMILY.register("name")``. Modules whose import is slow (a backbone pulling in its
package) are named in ``lazy`` and imported on first :meth:`Registry.get`, so listing a
family's names never imports its models.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from eofm.errors import ConfigError

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(ConfigError):
    """A name that no model of the family is registered under."""


class Registry(Generic[T]):
    """Models of one family by name: ``register`` adds, ``get`` finds, ``names`` lists.

    ``lazy`` maps a name to the module that registers it, imported the first time the
    name is asked for.
    """

    def __init__(self, family: str, lazy: Mapping[str, str] | None = None) -> None:
        self.family = family
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (once)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.family} registry: name must be a non-empty string")

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(
                    f"{self.family} {name!r} is already registered "
                    f"({_describe(self._entries[name])}); pick another name"
                )
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The object registered as ``name``; unknown names list the known ones."""
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
            if name not in self._entries:
                raise ImportError(
                    f"module {self._lazy[name]} did not register {self.family} {name!r}; "
                    f"decorate its class with @register({name!r})"
                )
        if name not in self._entries:
            known = self.names()
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownNameError(
                f"unknown {self.family} {name!r}{hint}; expected one of {list(known)}"
            )
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name, including those not imported yet, sorted."""
        return tuple(sorted({*self._entries, *self._lazy}))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", type(obj).__name__)
    return f"{module}.{name}" if module else name
