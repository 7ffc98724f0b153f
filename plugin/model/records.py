"""``@record``: the part of ``@dataclasses.dataclass`` netplex uses, without its import cost.

``import dataclasses`` also imports ``inspect`` (and with it ``dis``, ``ast``, ``tokenize``,
``enum`` ...): about 4 ms on a node's python3, paid by every run of the thin CNI plugin,
before it does any work. The plugin's value classes need only a generated ``__init__``,
``__repr__``, ``__eq__`` (and ``__hash__`` when frozen), frozen instances, ``__slots__``,
``field(default_factory=...)``, keyword-only fields and :func:`replace`; that is what this
module generates, the way dataclasses does (one ``exec`` of generated source per class).

Type checkers see a dataclass (PEP 681 ``dataclass_transform``), and
``tests/plugin/test_records.py`` holds the behaviour equal to ``dataclasses`` on the same
classes. Not supported, because nothing here needs them: ``order``, ``InitVar``,
``ClassVar`` fields, pickling of slotted instances, inheritance between records.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time; mypy takes this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Callable[[T], T]:
        return lambda f: f


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class Field:
    __slots__ = ("compare", "default", "default_factory", "kw_only", "name", "repr")

    def __init__(self, default: Any, default_factory: Any, repr: bool, kw_only: bool, compare: bool = True) -> None:
        self.default, self.default_factory, self.repr, self.kw_only = default, default_factory, repr, kw_only
        self.compare = compare
        self.name = ""


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, repr: bool = True,
          kw_only: bool = False, compare: bool = True) -> Any:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, repr, kw_only, compare)


class _KwOnly:
    __slots__ = ()


KW_ONLY: Any = _KwOnly()
"""Annotate a pseudo-field ``_: KW_ONLY``: the fields after it are keyword-only."""

FIELDS = "__record_fields__"


@dataclass_transform(field_specifiers=(field,), kw_only_default=False)
def record(cls: type[T] | None = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    """Class decorator: ``@record``, ``@record(frozen=True, slots=True)``."""

    def wrap(klass: type[T]) -> type[T]:
        return _process(klass, frozen=frozen, slots=slots)

    return wrap if cls is None else wrap(cls)


def _fields_of(cls: type) -> list[Field]:
    out: list[Field] = []
    kw_only = False
    # Not inspect.get_annotations(): importing inspect is what this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if text == "KW_ONLY" or annotation is KW_ONLY:
            kw_only = True
            continue
        if text.startswith(("ClassVar", "typing.ClassVar")):
            raise TypeError(f"{cls.__name__}.{name}: ClassVar fields are not supported by @record")
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(value, MISSING, True, False)
        spec.name = name
        spec.kw_only = spec.kw_only or kw_only
        out.append(spec)
    return out


def _process(cls: type[T], *, frozen: bool, slots: bool) -> type[T]:
    fields = _fields_of(cls)
    namespace: dict[str, Any] = {"MISSING": MISSING, "__object_setattr": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        if f.default is not MISSING:
            namespace[f"__default_{f.name}"] = f.default
            param = f"{f.name}=__default_{f.name}"
            value = f.name
        elif f.default_factory is not MISSING:
            namespace[f"__factory_{f.name}"] = f.default_factory
            param = f"{f.name}=MISSING"
            value = f"__factory_{f.name}() if {f.name} is MISSING else {f.name}"
        else:
            param = f.name
            value = f.name
        if not f.kw_only and positional and "=" in positional[-1] and "=" not in param:
            raise TypeError(f"{cls.__name__}: non-default field {f.name!r} follows a default field")
        (keyword if f.kw_only else positional).append(param)
        body.append(f"__object_setattr(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
    if "__post_init__" in cls.__dict__:
        body.append("self.__post_init__()")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({params}):\n    " + "\n    ".join(body or ["pass"]) + "\n"
    exec(source, namespace)  # generated from field names only, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"

    names = tuple(f.name for f in fields)
    compared = tuple(f.name for f in fields if f.compare)
    shown = tuple(f.name for f in fields if f.repr)

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in compared)

    attrs: dict[str, Any] = {"__init__": init, "__eq__": __eq__, FIELDS: fields, "__match_args__": names}
    if "__repr__" not in cls.__dict__:
        attrs["__repr__"] = __repr__
    if frozen:
        def __setattr__(self: Any, name: str, value: object) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in compared))

        attrs.update(__setattr__=__setattr__, __delattr__=__delattr__, __hash__=__hash__)
    elif "__hash__" not in cls.__dict__:
        attrs["__hash__"] = None  # mutable and comparable: unhashable, as dataclasses makes it

    if slots:
        if "__slots__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} already specifies __slots__")
        body_dict = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
        body_dict.update(attrs)
        body_dict["__slots__"] = names
        made: type[T] = type(cls.__name__, cls.__bases__, body_dict)
        made.__qualname__ = cls.__qualname__
        return made
    for key, value in attrs.items():
        setattr(cls, key, value)
    for f in fields:  # a field's Field() object must not stay as the class attribute
        if isinstance(cls.__dict__.get(f.name), Field):
            if f.default is not MISSING:
                setattr(cls, f.name, f.default)
            else:
                delattr(cls, f.name)
    return cls


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes``, through ``__init__`` (so ``__post_init__`` runs)."""
    fields: list[Field] = getattr(type(obj), FIELDS)
    for name in changes:
        if name not in {f.name for f in fields}:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
    positional = {f.name: changes.get(f.name, getattr(obj, f.name)) for f in fields}
    return type(obj)(**positional)


def is_record(obj: object) -> bool:
    return hasattr(type(obj) if not isinstance(obj, type) else obj, FIELDS)

