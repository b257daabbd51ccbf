"""Traces: checkpoints inside an action. The first attempt runs the body and records its
result; a later attempt of the same action (a retry, or a resumed run) gets it back without
running the body again."""

import sys

from . import _msgpack, _refs, _types
from ._host import wit


def attempt():
    """Which attempt of its action this is, 1 for the first."""
    return wit().trace.attempt()


def _args_document(args):
    return _msgpack.encode(_types.to_wire_any(args, "trace args"))


def _encode(value):
    return _msgpack.encode(_types.to_wire_any(value, "trace result"))


def _decode(item, returns):
    raw = _msgpack.decode(item, ext_hook=_refs.from_ext)
    return _types.from_wire(returns, raw, "trace result") if returns is not None else raw


def _record(name, args_doc, items):
    from componentize_py_types import Err

    try:
        wit().trace.record(name, args_doc, items)
    except Err as e:
        # A checkpoint that cannot be written never fails the task: it runs again next time.
        print(f"sluice: trace {name!r} not recorded: {e.value}", file=sys.stderr)


def trace(name, args, body, returns=None):
    """`body()`'s result, recorded under `name` and `args` the first time; replayed later.
    `returns` (an annotation) turns a replayed value back into its type (a dataclass, say)."""
    args_doc = _args_document(args)
    recorded = wit().trace.replay(name, args_doc)
    if recorded:
        return _decode(recorded[0], returns)
    result = body()
    _record(name, args_doc, [_encode(result)])
    return result


def trace_iter(name, args, make_iter, returns=None):
    """Yields the items of `make_iter()`, recorded once exhausted; a later attempt replays them
    in order without calling `make_iter` at all. An iterator left half-read is not recorded."""
    args_doc = _args_document(args)
    recorded = wit().trace.replay(name, args_doc)
    if recorded is not None:
        for item in recorded:
            yield _decode(item, returns)
        return
    items = []
    for value in make_iter():
        items.append(_encode(value))
        yield value
    _record(name, args_doc, items)
