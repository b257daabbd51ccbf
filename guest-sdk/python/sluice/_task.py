"""`@task`: a type-annotated function becomes a task of the component's environment."""

import inspect
import re

from . import _msgpack, _refs, _types

# Every task of this component, by name, in the order they were declared.
REGISTRY = {}

_AGE_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class UserError(Exception):
    """The task ran and reports it could not do its job. `retryable` tells the host whether
    another attempt could succeed (raise `sluice.retryable(...)` for that)."""

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def retryable(message):
    """An error another attempt might not hit (a flaky dependency, say)."""
    return UserError(message, retryable=True)


class Settings:
    """What `@task(...)` accepts; the names and meanings of the Rust SDK's `#[task(...)]`."""

    KNOWN = (
        "name", "cache", "ignored_inputs", "serialize", "cache_max_age", "cache_scope",
        "retries", "backoff_ms", "timeout_ms", "inline_limit", "memory_limit",
    )

    def __init__(self, func_name, **given):
        unknown = sorted(set(given) - set(self.KNOWN))
        if unknown:
            raise TypeError(
                f"@task on {func_name}: unknown setting {', '.join(unknown)} "
                f"(known: {', '.join(self.KNOWN)})"
            )
        self.name = given.get("name") or func_name
        self.cache = given.get("cache") or "disable"
        ignored = given.get("ignored_inputs") or []
        self.ignored_inputs = [s.strip() for s in ignored.split(",")] if isinstance(ignored, str) else list(ignored)
        self.serialize = bool(given.get("serialize", False))
        self.cache_max_age_ms = _age_ms(given.get("cache_max_age"), func_name)
        scope = given.get("cache_scope", "project")
        if scope not in ("project", "global"):
            raise ValueError(f"@task on {func_name}: cache_scope must be 'project' or 'global', not {scope!r}")
        self.cache_global = scope == "global"
        self.retries = int(given.get("retries", 0))
        self.backoff_ms = int(given.get("backoff_ms", 0))
        self.timeout_ms = given.get("timeout_ms")
        self.inline_limit = given.get("inline_limit")
        self.memory_limit = given.get("memory_limit")


def _age_ms(age, func_name):
    if age is None or isinstance(age, int):
        return age
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)\s*", str(age))
    if not m:
        raise ValueError(f"@task on {func_name}: cache_max_age {age!r}: expected e.g. '30d', '12h', '500ms'")
    return int(m.group(1)) * _AGE_UNITS_MS[m.group(2)]


class Task:
    """A task. Calling it runs the function here (as in a unit test); `.call`, `.submit` and
    `.map` run it as child actions through the host."""

    def __init__(self, func, settings):
        self.func = func
        self.settings = settings
        self.name = settings.name
        self.doc = inspect.getdoc(func)
        self.signature = inspect.signature(func)
        hints = _types._hints(func, f"task {self.name}")
        self.input_types = []
        for param in self.signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise _types.DescribeError(f"task {self.name}: *args and **kwargs cannot be inputs")
            if param.name not in hints:
                raise _types.DescribeError(f"task {self.name}: input {param.name} needs a type annotation")
            self.input_types.append((param.name, hints[param.name]))
        if "return" not in hints:
            raise _types.DescribeError(f"task {self.name}: the return type needs an annotation (-> None for none)")
        self.output_types = _types.output_types(hints["return"])
        for name in self.settings.ignored_inputs:
            if name not in dict(self.input_types):
                raise ValueError(f"task {self.name}: ignored input {name!r} is not an input")
        # Describe now: a bad annotation fails the build, not the first run.
        self.table = self.describe()

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def __repr__(self):
        return f"<sluice task {self.name}>"

    def describe(self):
        """(node table, inputs as (name, index), outputs as (name, index))."""
        table = _types.TypeTable()
        inputs = [(n, table.of(t, f"inputs.{n}")) for n, t in self.input_types]
        outputs = [(f"o{i}", table.of(t, f"outputs.o{i}")) for i, t in enumerate(self.output_types)]
        return table.nodes, inputs, outputs

    # ---- running, as the host asks ----

    def run_document(self, document):
        """Runs on a MessagePack inputs document; returns the outputs document."""
        raw = _msgpack.decode(document, ext_hook=_refs.from_ext)
        if not isinstance(raw, dict):
            raise _types.ValueMismatch(f"task {self.name}: inputs must be a map")
        kwargs = {n: _types.from_wire(t, raw.get(n), f"inputs.{n}") for n, t in self.input_types}
        result = self.func(**kwargs)
        return _msgpack.encode(self.outputs_to_wire(result))

    def outputs_to_wire(self, result):
        if not self.output_types:
            return {}
        if len(self.output_types) == 1:
            return {"o0": _types.to_wire(self.output_types[0], result, "outputs.o0")}
        if not isinstance(result, tuple) or len(result) != len(self.output_types):
            raise _types.ValueMismatch(
                f"outputs: task {self.name} declares {len(self.output_types)} outputs; return a tuple of them"
            )
        return {
            f"o{i}": _types.to_wire(t, v, f"outputs.o{i}")
            for i, (t, v) in enumerate(zip(self.output_types, result))
        }

    def inputs_to_wire(self, args, kwargs):
        """The inputs document of a call of this task with these arguments."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"calling task {self.name}: {e}") from None
        return {
            n: _types.to_wire(t, bound.arguments[n], f"inputs.{n}")
            for n, t in self.input_types
            if n in bound.arguments
        }

    def outputs_from_wire(self, raw):
        values = [
            _types.from_wire(t, raw.get(f"o{i}"), f"outputs.o{i}")
            for i, t in enumerate(self.output_types)
        ]
        return _shape(values)

    # ---- calling it as a child action (see _calls.py) ----

    def call(self, *args, **kwargs):
        """Runs this task as a child action and waits for its outputs."""
        from . import _calls

        return _calls.call_task(self, self.inputs_to_wire(args, kwargs))

    def submit(self, *args, **kwargs):
        """Starts this task as a child action; `.result()` on what it returns waits."""
        from . import _calls

        return _calls.submit_task(self, self.inputs_to_wire(args, kwargs))

    def map(self, items, concurrency=0, return_exceptions=False):
        """One child per item (a tuple or dict for a task of several inputs), at most
        `concurrency` at a time (0: the host's default); the outputs in item order."""
        from . import _calls

        documents = [self.inputs_to_wire(*_as_arguments(item, len(self.input_types))) for item in items]
        return _calls.map_task(self, documents, concurrency, return_exceptions)


def _as_arguments(item, arity):
    if isinstance(item, dict):
        return (), item
    if arity != 1 and isinstance(item, tuple):
        return item, {}
    return (item,), {}


def _shape(values):
    """None for no outputs, the value for one, a tuple for several (as the Rust SDK)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return tuple(values)


def task(func=None, **settings):
    """Makes a type-annotated function a task: `@task` or `@task(cache="auto", retries=2)`."""

    def wrap(f):
        t = Task(f, Settings(f.__name__, **settings))
        if t.name in REGISTRY:
            raise ValueError(f"two tasks are named {t.name!r}")
        REGISTRY[t.name] = t
        return t

    return wrap(func) if func is not None else wrap
