"""Type descriptors from Python annotations, and values to and from their wire form.

A descriptor is built as a table of plain tuples (the same shape as the WIT `type-node`), so
that this module runs in plain CPython too; `_export.py` turns the table into WIT records.
The mapping is the Rust SDK's, type for type, so a Python task and its Rust twin have the same
interface hash:

    int -> int            float -> float          bool -> bool        str -> string
    bytes -> bytes        datetime -> datetime    timedelta -> duration
    None -> none          list[T] -> list         dict[str, T] -> map
    a dataclass -> record (its fields)            an Enum -> enum (its member names)
    Optional[T] -> optional                       Union[A, B] -> union (in that order)
    File / File["csv"] -> file                    Dir -> dir
    DataFrame / DataFrame["csv"] -> dataframe ("parquet" when no format is given)
"""

import dataclasses
import functools
import datetime as _dt
import enum
import types as _pytypes
import typing

from . import _refs


class DescribeError(TypeError):
    """An annotation sluice cannot describe, naming where it is."""


class ValueMismatch(ValueError):
    """A value that does not have its declared type, naming where it is."""


_SIMPLE = {
    int: ("int",),
    float: ("float",),
    bool: ("bool",),
    str: ("string",),
    bytes: ("bytes",),
    _dt.datetime: ("datetime",),
    _dt.timedelta: ("duration",),
    type(None): ("none",),
    None: ("none",),
}


def _origin_args(ann):
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return _origin_args(args[0])[0], args[0], args[1:]
    return origin, args, None


def _split_optional(args):
    """Union arguments without None, and whether None was among them."""
    rest = tuple(a for a in args if a is not type(None) and a is not None)
    return rest, len(rest) != len(args)


def _annotated_format(ann):
    """`Annotated[File, "csv"]` -> (File, "csv"), like Flyte's `Annotated[DataFrame, "parquet"]`."""
    if typing.get_origin(ann) is typing.Annotated:
        base, *extra = typing.get_args(ann)
        formats = [e for e in extra if isinstance(e, str)]
        return base, formats[0] if formats else None
    return ann, None


class TypeTable:
    """The node table of one task (shared by its inputs and outputs)."""

    def __init__(self):
        self.nodes = []

    def push(self, node):
        self.nodes.append(node)
        return len(self.nodes) - 1

    def of(self, ann, where, depth=0):
        """Adds the descriptor of annotation `ann`; `where` names it in errors."""
        if depth > 64:
            raise DescribeError(f"{where}: type nested too deeply (or recursive)")
        ann, fmt = _annotated_format(ann)
        if ann in _SIMPLE:
            return self.push(_SIMPLE[ann])
        if isinstance(ann, type) and issubclass(ann, _refs.Reference):
            return self.push(ann._describe(fmt))
        if isinstance(ann, type) and issubclass(ann, enum.Enum):
            return self.push(("enum", [m.name for m in ann]))
        if dataclasses.is_dataclass(ann) and isinstance(ann, type):
            hints = _hints(ann, where)
            fields = [
                (f.name, self.of(hints[f.name], f"{where}.{f.name}", depth + 1))
                for f in dataclasses.fields(ann)
            ]
            return self.push(("record", fields))
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        if origin is list:
            (item,) = args or (None,)
            if item is None:
                raise DescribeError(f"{where}: a list needs its item type, e.g. list[int]")
            return self.push(("list", self.of(item, f"{where}[]", depth + 1)))
        if origin is dict:
            if len(args) != 2 or args[0] is not str:
                raise DescribeError(f"{where}: a dict needs str keys and a value type, e.g. dict[str, int]")
            return self.push(("map", self.of(args[1], f"{where}{{}}", depth + 1)))
        if origin is typing.Union or origin is _pytypes.UnionType:
            rest, optional = _split_optional(args)
            if len(rest) == 1:
                inner = self.of(rest[0], where, depth + 1)
            else:
                inner = self.push(("union", [self.of(a, where, depth + 1) for a in rest]))
            return self.push(("optional", inner)) if optional else inner
        name = getattr(ann, "__name__", repr(ann))
        raise DescribeError(
            f"{where}: sluice cannot describe {name} (use int, float, bool, str, bytes, datetime, "
            "timedelta, None, list[T], dict[str, T], a dataclass, an Enum, Optional, Union, "
            "File, Dir or DataFrame)"
        )


def _hints(obj, where):
    try:
        return _cached_hints(obj)
    except Exception as e:  # a forward reference that does not resolve, say
        raise DescribeError(f"{where}: cannot read the type annotations: {e}") from None


@functools.lru_cache(maxsize=None)
def _cached_hints(obj):
    # Resolved once per class or function: values convert field by field, element by element.
    return typing.get_type_hints(obj, include_extras=True)


def to_wire(ann, value, where):
    """`value` (of annotation `ann`) as plain MessagePack-ready data. A value that does not
    have its declared type is sent as it is: the host validates every document and names the
    path of what is wrong, the same way for every language."""
    try:
        return _to_wire(ann, value, where)
    except ValueMismatch:
        return to_wire_any(value, where)


def _to_wire(ann, value, where):
    ann, _ = _annotated_format(ann)
    if ann is None or ann is type(None):
        if value is not None:
            raise ValueMismatch(f"{where}: expected None, got {type(value).__name__}")
        return None
    if ann is typing.Any:
        return to_wire_any(value, where)
    if ann in _SIMPLE:
        return _simple_to_wire(ann, value, where)
    if isinstance(ann, type) and issubclass(ann, _refs.Reference):
        if not isinstance(value, _refs.Reference):
            raise ValueMismatch(f"{where}: expected a {ann.__name__}, got {type(value).__name__}")
        return value._to_ext()
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        if isinstance(value, ann):
            return value.name
        raise ValueMismatch(f"{where}: expected a {ann.__name__}, got {value!r}")
    if dataclasses.is_dataclass(ann) and isinstance(ann, type):
        if not isinstance(value, ann):
            raise ValueMismatch(f"{where}: expected a {ann.__name__}, got {type(value).__name__}")
        hints = _hints(ann, where)
        return {
            f.name: _to_wire(hints[f.name], getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(ann)
        }
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueMismatch(f"{where}: expected a list, got {type(value).__name__}")
        return [_to_wire(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueMismatch(f"{where}: expected a dict, got {type(value).__name__}")
        return {k: _to_wire(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Union or origin is _pytypes.UnionType:
        rest, optional = _split_optional(args)
        if value is None and optional:
            return None
        for variant in rest:
            if _is_instance(variant, value):
                return _to_wire(variant, value, where)
        raise ValueMismatch(f"{where}: {type(value).__name__} is none of {ann}")
    raise ValueMismatch(f"{where}: cannot encode a value of {ann}")


def _simple_to_wire(ann, value, where):
    if ann is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ann is bytes and isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if ann is int and isinstance(value, bool) or not isinstance(value, ann):
        raise ValueMismatch(f"{where}: expected {ann.__name__}, got {type(value).__name__}")
    return value


def _is_instance(ann, value):
    """Whether a Python value is of annotation `ann`, shallowly (to pick a Union variant)."""
    ann, _ = _annotated_format(ann)
    origin = typing.get_origin(ann)
    if ann is None or ann is type(None):
        return value is None
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Union or origin is _pytypes.UnionType:
        return any(_is_instance(a, value) for a in typing.get_args(ann))
    return isinstance(ann, type) and isinstance(value, ann)


def to_wire_any(value, where):
    """A value without a declared type (the inputs of a call by name)."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, _refs.Reference):
        return value._to_ext()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_wire_any(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, (list, tuple)):
        return [to_wire_any(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: to_wire_any(v, f"{where}.{k}") for k, v in value.items()}
    return value


def from_wire(ann, raw, where):
    """Decoded MessagePack data (references already wrapped) as a value of annotation `ann`."""
    ann, fmt = _annotated_format(ann)
    if ann is typing.Any:
        return raw
    if ann in _SIMPLE:
        if ann is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if ann is None or ann is type(None):
            return None
        return raw
    if isinstance(ann, type) and issubclass(ann, _refs.Reference):
        return ann._from_reference(raw, fmt) if isinstance(raw, _refs.Reference) else raw
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        try:
            return ann[raw]
        except KeyError:
            raise ValueMismatch(f"{where}: {raw!r} is not a {ann.__name__}") from None
    if dataclasses.is_dataclass(ann) and isinstance(ann, type):
        if not isinstance(raw, dict):
            raise ValueMismatch(f"{where}: expected a {ann.__name__} record")
        hints = _hints(ann, where)
        return ann(**{
            f.name: from_wire(hints[f.name], raw.get(f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(ann)
        })
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is list:
        return [from_wire(args[0], v, f"{where}[{i}]") for i, v in enumerate(raw)]
    if origin is dict:
        return {k: from_wire(args[1], v, f"{where}.{k}") for k, v in raw.items()}
    if origin is typing.Union or origin is _pytypes.UnionType:
        rest, optional = _split_optional(args)
        if raw is None and optional:
            return None
        for variant in rest:
            if _fits(variant, raw):
                return from_wire(variant, raw, where)
        raise ValueMismatch(f"{where}: {raw!r} fits none of {ann}")
    return raw


def _fits(ann, raw):
    """Whether decoded data fits annotation `ann` (the host picks a union's first fit too)."""
    ann, _ = _annotated_format(ann)
    if ann is None or ann is type(None):
        return raw is None
    if ann is int:
        return isinstance(raw, int) and not isinstance(raw, bool)
    if ann is float:
        return isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if ann in (bool, str, bytes, _dt.datetime, _dt.timedelta):
        return isinstance(raw, ann)
    if isinstance(ann, type) and issubclass(ann, _refs.Reference):
        return isinstance(raw, ann._base())
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return isinstance(raw, str) and raw in ann.__members__
    if dataclasses.is_dataclass(ann) and isinstance(ann, type):
        if not isinstance(raw, dict):
            return False
        hints = _hints(ann, "")
        return all(_fits(hints[f.name], raw.get(f.name)) for f in dataclasses.fields(ann))
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is list:
        return isinstance(raw, list) and all(_fits(args[0], v) for v in raw)
    if origin is dict:
        return isinstance(raw, dict) and all(_fits(args[1], v) for v in raw.values())
    if origin is typing.Union or origin is _pytypes.UnionType:
        return any(_fits(a, raw) for a in args)
    return True


def output_types(ret):
    """The declared outputs of a return annotation: `tuple[A, B]` is two outputs (`o0`, `o1`),
    None none, anything else one (`o0`), as in the Rust SDK."""
    if ret is None or ret is type(None):
        return []
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if args == ((),) or not args:
            return []
        if Ellipsis in args:
            raise DescribeError("return: a tuple of outputs needs a fixed length, e.g. tuple[int, str]")
        return list(args)
    return [ret]
