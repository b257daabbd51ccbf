"""The component's export: `sluice:task/environment`, over the tasks `@task` registered.

The build (guest-sdk/python/build.py) generates the entry module, which imports the author's
module (registering its tasks), sets `ENVIRONMENT_NAME` and re-exports `Environment`.
"""

import sys
import traceback

from . import _msgpack, _task, _types

ENVIRONMENT_NAME = "python"


def _wit_types():
    from wit_world.imports import types

    return types


def _node(types, node):
    kind = node[0]
    simple = {
        "none": types.TypeNode_None_, "bool": types.TypeNode_Bool, "int": types.TypeNode_Int,
        "float": types.TypeNode_Float, "string": types.TypeNode_String,
        "bytes": types.TypeNode_Bytes, "datetime": types.TypeNode_Datetime,
        "duration": types.TypeNode_Duration, "dir": types.TypeNode_Dir,
    }
    if kind in simple:
        return simple[kind]()
    if kind == "list":
        return types.TypeNode_List(node[1])
    if kind == "map":
        return types.TypeNode_Map(node[1])
    if kind == "optional":
        return types.TypeNode_Optional(node[1])
    if kind == "union":
        return types.TypeNode_Union(list(node[1]))
    if kind == "enum":
        return types.TypeNode_Enum(list(node[1]))
    if kind == "record":
        return types.TypeNode_Record([types.FieldType(n, i) for n, i in node[1]])
    if kind == "file":
        return types.TypeNode_File(types.FileType(node[1]))
    if kind == "dataframe":
        return types.TypeNode_Dataframe(types.FrameType(node[1], list(node[2])))
    raise ValueError(f"unknown type node {kind}")


def _spec(types, t):
    nodes, inputs, outputs = t.table
    s = t.settings
    if s.cache == "disable":
        version = types.CacheVersion_Disable()
    elif s.cache == "auto":
        version = types.CacheVersion_Auto()
    else:
        version = types.CacheVersion_Override(s.cache)
    scope = types.CacheScope.GLOBAL if s.cache_global else types.CacheScope.PROJECT_DOMAIN
    return types.TaskSpec(
        name=t.name,
        doc=t.doc,
        types=[_node(types, n) for n in nodes],
        inputs=[types.Param(n, None, i) for n, i in inputs],
        outputs=[types.Param(n, None, i) for n, i in outputs],
        cache=types.CachePolicy(version, list(s.ignored_inputs), s.serialize, s.cache_max_age_ms, scope),
        retry=types.RetryPolicy(s.retries, s.backoff_ms),
        timeout_ms=s.timeout_ms,
        inline_limit_bytes=s.inline_limit,
        memory_limit_bytes=s.memory_limit,
    )


def _user(types, message, retryable):
    from componentize_py_types import Err

    return Err(types.TaskError_User(types.UserError(message, retryable)))


class Environment:
    """What the host calls: `name`, `describe`, `run`."""

    def name(self):
        return ENVIRONMENT_NAME

    def describe(self):
        types = _wit_types()
        return [_spec(types, t) for t in _task.REGISTRY.values()]

    def run(self, task, inputs):
        from componentize_py_types import Err

        from ._calls import CallError

        types = _wit_types()
        t = _task.REGISTRY.get(task)
        if t is None:
            known = ", ".join(_task.REGISTRY)
            raise Err(types.TaskError_Failure(f"no task named {task!r} in this environment (it has: {known})"))
        try:
            return t.run_document(inputs)
        except _task.UserError as e:
            raise _user(types, e.message, e.retryable) from None
        except CallError as e:
            # An unhandled child error: the caller fails with the child's in its message.
            raise _user(types, str(e), e.retryable) from None
        except (_types.ValueMismatch, _msgpack.MsgpackError) as e:
            # Outputs that have no MessagePack form (a set, a naive datetime ...): the result
            # could not be sent, which is not the task's own error.
            raise Err(types.TaskError_Failure(f"task {task}: {e}")) from None
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise _user(types, f"{type(e).__name__}: {e}", False) from None
