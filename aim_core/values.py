"""A base for the core's small internal value classes.

The public models (:mod:`aim_core.models`) are attrs classes. attrs writes and
compiles the methods of each class when its module is imported: 0.5 to 1 ms a
class, and ``aim run`` imports some thirty internal ones. The internal classes
therefore write their own ``__init__`` (keyword arguments, ``__slots__``) and
inherit the rest from :class:`Value`: immutability, equality and hashing by
field, a readable ``repr`` and :meth:`Value.evolve` (``attrs.evolve``'s
counterpart). A class whose fields change after creation sets ``frozen = False``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import on the start of `aim run`
if TYPE_CHECKING:
    from typing import Any, TypeVar

    V = TypeVar("V", bound="Value")


class Value:
    """Fields are the ``__slots__`` of the class and its bases, in order."""

    __slots__ = ()
    frozen = True

    def _init(self, **fields: Any) -> None:
        """Set the fields (what ``__init__`` calls)."""
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the fields, in order."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        return tuple(names)

    def as_dict(self) -> dict[str, Any]:
        """The fields and their values (``attrs.asdict(recurse=False)``)."""
        return {name: getattr(self, name) for name in self.field_names()}

    def evolve(self: V, **changes: Any) -> V:
        """A copy with ``changes`` (``attrs.evolve``)."""
        return type(self)(**{**self.as_dict(), **changes})

    def __setattr__(self, name: str, value: Any) -> None:
        if self.frozen:
            raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self.frozen:
            raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name}")
        object.__delattr__(self, name)

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.field_names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        if not self.frozen:
            raise TypeError(f"unhashable type: '{type(self).__name__}'")
        return hash((type(self), self._key()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.field_names())
        return f"{type(self).__name__}({fields})"
