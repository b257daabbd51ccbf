"""The seed's CSV pipeline in Python: shuffle the rows of a CSV file, then drop a column.
The Rust twin is examples/csv; for the same input, seed and column both write the same bytes.

    scripts/build-py.sh examples/python/py_csv.py -o py_csv.wasm
"""

import sluice
from sluice import File, task

Csv = File["csv"]
_MASK = (1 << 64) - 1


def _parse(text):
    lines = [line for line in text.splitlines() if line]
    if not lines:
        return [], []
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def _write(name, header, rows):
    out = Csv.create(name)
    out.write("".join(",".join(r) + "\n" for r in [header, *rows]))
    return out.finish()


@task
def shuffle_rows(data: Csv, seed: int) -> Csv:
    """Shuffles the rows of a CSV file (the header stays first), the same way for the same seed."""
    header, rows = _parse(data.read_text())
    # Fisher-Yates driven by a 64-bit LCG, so every language gets the same order.
    state = (seed & _MASK) ^ 0x9E3779B97F4A7C15
    for i in range(len(rows) - 1, 0, -1):
        state = (state * 6364136223846793005 + 1442695040888963407) & _MASK
        j = (state >> 33) % (i + 1)
        rows[i], rows[j] = rows[j], rows[i]
    return _write("shuffled.csv", header, rows)


@task
def drop_column(data: Csv, column: str) -> Csv:
    """Drops one column of a CSV file."""
    header, rows = _parse(data.read_text())
    if column not in header:
        raise sluice.UserError(f'column "{column}" not in the data (columns: {", ".join(header)})')
    index = header.index(column)
    keep = lambda row: row[:index] + row[index + 1:]  # noqa: E731
    return _write("dropped.csv", keep(header), [keep(r) for r in rows])


@task
def pipeline(data: Csv, seed: int, column: str) -> Csv:
    """Shuffles, then drops a column: two child actions."""
    return drop_column.call(shuffle_rows.call(data, seed), column)


@task
def mixed_pipeline(data: Csv, seed: int, column: str) -> Csv:
    """The same pipeline across languages: the Rust shuffle_rows, then this drop_column."""
    shuffled = sluice.call("example-csv.shuffle_rows", data=data, seed=seed)
    return drop_column.call(shuffled, column)
