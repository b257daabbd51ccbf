"""The host's imports, loaded on first use so `import sluice` also works outside a component
(tasks stay plain functions that unit tests call directly)."""

import types


class NotInComponent(RuntimeError):
    """A host call made outside a sluice component (in a plain Python unit test, say)."""


_WIT = None


def wit():
    """The generated import modules: `data`, `log`, `trace`, `tasks`."""
    global _WIT
    if _WIT is None:
        try:
            from wit_world.imports import data, log, tasks, trace
        except ImportError as e:
            raise NotInComponent(
                "this needs the sluice host: it works only inside a component built by "
                f"guest-sdk/python/build.py ({e})"
            ) from None
        _WIT = types.SimpleNamespace(data=data, log=log, tasks=tasks, trace=trace)
    return _WIT


def host_call(fn, *args):
    """Calls a `data` import, turning its typed error into the matching Python exception."""
    from componentize_py_types import Err

    try:
        return fn(*args)
    except Err as e:
        raise data_error(e.value) from None


def data_error(error):
    name = type(error).__name__
    message = getattr(error, "value", str(error))
    if name.endswith("NotGranted"):
        return PermissionError(f"not granted: {message}")
    if name.endswith("Missing"):
        return FileNotFoundError(f"missing: {message}")
    if name.endswith("Invalid"):
        return ValueError(f"invalid: {message}")
    return OSError(f"store: {message}")
