"""sluice for Python task authors.

    from sluice import task, File, DataFrame

    @task(cache="auto")
    def add_one(x: int) -> int:
        return x + 1

Build a component with `python guest-sdk/python/build.py app.py -o app.wasm` (see README).
"""

from . import log
from ._calls import CallError, Pending, as_completed, call, map, submit
from ._refs import DataFrame, Dir, DirBuilder, File, FileWriter, FrameWriter
from ._task import Task, UserError, retryable, task
from ._trace import attempt, trace, trace_iter
from ._types import DescribeError, ValueMismatch

__all__ = [
    "CallError", "DataFrame", "DescribeError", "Dir", "DirBuilder", "File", "FileWriter",
    "FrameWriter", "Pending", "Task", "UserError", "ValueMismatch", "as_completed", "attempt",
    "call", "log", "map", "retryable", "submit", "task", "trace", "trace_iter",
]
