"""Calls to other tasks: each one a child action that the host records, caches, limits and
retries. A child's error arrives as `CallError`; left unhandled it fails the caller with the
child's error in its message."""

from . import _msgpack, _refs, _task, _types
from ._host import wit


class CallError(Exception):
    """Why a call produced no outputs. `kind` is the child's error kind (user, failure, trap,
    deadline, ...) or unknown-task / input / limit for a call refused before it started."""

    def __init__(self, task, action, kind, message, retryable):
        self.task = task
        self.action = action
        self.kind = kind
        self.message = message
        self.retryable = retryable
        super().__init__(str(self))

    def __str__(self):
        action = f" (action {self.action})" if self.action else ""
        return f"{self.task}{action} failed: ({self.kind}) {self.message}"

    @classmethod
    def _from_host(cls, e):
        return cls(e.task, e.action, e.kind, e.message, e.retryable)


def _decode_outputs(task, document):
    raw = _msgpack.decode(document, ext_hook=_refs.from_ext)
    if isinstance(task, _task.Task):
        return task.outputs_from_wire(raw)
    # By name: no declared types here, so outputs come back as decoded.
    return _task._shape([raw[k] for k in sorted(raw, key=lambda k: int(k[1:]) if k[1:].isdigit() else k)])


def _name(task):
    return task.name if isinstance(task, _task.Task) else task


def _outcome(task, result):
    """A WIT `result<list<u8>, call-error>` as outputs or a CallError."""
    from componentize_py_types import Err

    if isinstance(result, Err):
        return CallError._from_host(result.value)
    return _decode_outputs(task, result.value)


def call_task(task, inputs):
    from componentize_py_types import Err

    try:
        document = wit().tasks.call(_name(task), _msgpack.encode(inputs))
    except Err as e:
        raise CallError._from_host(e.value) from None
    return _decode_outputs(task, document)


class Pending:
    """A submitted call. `result()` waits for it and returns its outputs (or raises its
    CallError)."""

    def __init__(self, task, call_id):
        self._task = task
        self.id = call_id
        self._done = False
        self._outcome = None

    def done(self):
        return self._done

    def result(self):
        while not self._done:
            if not _wait_one():
                raise RuntimeError(f"call {self.id} of {_name(self._task)} is not pending any more")
        if isinstance(self._outcome, CallError):
            raise self._outcome
        return self._outcome

    def _finish(self, result):
        self._outcome = _outcome(self._task, result)
        self._done = True


# Submitted calls that have not finished, by id.
_PENDING = {}


def submit_task(task, inputs):
    call_id = wit().tasks.submit(_name(task), _msgpack.encode(inputs))
    pending = Pending(task, call_id)
    _PENDING[call_id] = pending
    return pending


def _wait_one():
    """Waits for the next submitted call to finish; False when none is left."""
    nxt = wit().tasks.wait_next()
    if nxt is None:
        return False
    call_id, result = nxt
    pending = _PENDING.pop(call_id, None)
    if pending is not None:
        pending._finish(result)
    return True


def as_completed(pendings):
    """Yields the given submitted calls as they finish."""
    left = list(pendings)
    while left:
        ready = [p for p in left if p.done()]
        if not ready:
            if not _wait_one():
                raise RuntimeError("as_completed: calls are not pending any more")
            continue
        for p in ready:
            left.remove(p)
            yield p


def map_task(task, documents, concurrency, return_exceptions):
    encoded = [_msgpack.encode(d) for d in documents]
    results = [_outcome(task, r) for r in wit().tasks.map(_name(task), encoded, concurrency)]
    if not return_exceptions:
        for r in results:
            if isinstance(r, CallError):
                raise r
    return results


def call(task, **inputs):
    """Calls a task by name (`"task"` in this environment, `"<environment>.<task>"` in
    another) with keyword inputs; returns its output (a tuple for several, None for none)."""
    return call_task(task, _types.to_wire_any(inputs, "inputs"))


def submit(task, **inputs):
    return submit_task(task, _types.to_wire_any(inputs, "inputs"))


def map(task, inputs, concurrency=0, return_exceptions=False):
    """Calls a task by name once per dict of inputs."""
    documents = [_types.to_wire_any(i, "inputs") for i in inputs]
    return map_task(task, documents, concurrency, return_exceptions)
