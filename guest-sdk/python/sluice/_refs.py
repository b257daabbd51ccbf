"""Files, directories and frames passed by reference: the host streams every byte on demand.

`File`, `Dir` and `DataFrame` hold what the host said about an object (URI, size, SHA-256,
format, and for a frame its rows and columns). Opening one asks the host, which refuses
references the attempt was not given (`PermissionError: not granted: ...`).
"""

import io

from . import _msgpack
from ._host import host_call, wit

# Largest chunk asked of the host per read (the host answers at most 8 MiB).
READ_CHUNK = 1 << 20
# Rows per frame batch unless the caller says otherwise.
DEFAULT_BATCH_ROWS = 65_536

_EXT_CODES = {}


class Reference:
    """Base of `File`, `Dir` and `DataFrame`."""

    _ext_code = None
    _kind = "reference"
    format = None

    def __init__(self, meta):
        self._meta = {k: v for k, v in meta.items() if v is not None}

    @property
    def uri(self):
        return self._meta["uri"]

    @property
    def size(self):
        return self._meta.get("size")

    @property
    def sha256(self):
        return self._meta.get("sha256")

    def __repr__(self):
        return f"{type(self).__name__}({self.uri!r})"

    def __eq__(self, other):
        return isinstance(other, Reference) and self._meta == other._meta

    def __hash__(self):
        return hash(self.uri)

    @classmethod
    def from_uri(cls, uri):
        """Names an object by URI; the host opens it only if the attempt holds it."""
        return cls({"uri": uri, "format": cls.format})

    def __class_getitem__(cls, fmt):
        """`File["csv"]`, `DataFrame["arrow-ipc"]`: the same kind with a declared format."""
        key = (cls._base(), fmt)
        if key not in _FORMATTED:
            _FORMATTED[key] = type(f"{cls._base().__name__}[{fmt}]", (cls._base(),), {"format": fmt})
        return _FORMATTED[key]

    @classmethod
    def _base(cls):
        for klass in cls.__mro__:
            if klass in (File, Dir, DataFrame):
                return klass
        return cls

    @classmethod
    def _from_reference(cls, ref, fmt=None):
        return cls(ref._meta)

    def _to_ext(self):
        return _msgpack.Ext(self._ext_code, _msgpack.encode(self._meta))


_FORMATTED = {}


def _meta_of(reference):
    """A WIT `data.reference` record as our metadata dict."""
    return {
        "uri": reference.uri,
        "size": reference.size,
        "sha256": reference.sha256,
        "format": reference.format,
        "rows": reference.rows,
        "columns": [list(c) for c in reference.columns] or None,
    }


class File(Reference):
    """A file. `File["csv"]` declares its format (any format when none is given)."""

    _ext_code = _msgpack.FILE_EXT

    @classmethod
    def _describe(cls, fmt=None):
        return ("file", fmt or cls.format)

    def open(self, mode="rb"):
        """A reader: binary (`"rb"`, buffered, seekable) or text (`"r"`, UTF-8)."""
        handle = host_call(wit().data.open_file, self.uri)
        buffered = io.BufferedReader(_Reader(handle), buffer_size=READ_CHUNK)
        if mode == "rb":
            return buffered
        if mode == "r":
            return io.TextIOWrapper(buffered, encoding="utf-8", newline="")
        raise ValueError(f"File.open: mode must be 'rb' or 'r', not {mode!r}")

    def read_bytes(self):
        with self.open("rb") as f:
            return f.read()

    def read_text(self):
        with self.open("r") as f:
            return f.read()

    @classmethod
    def create(cls, name=None, format=None):
        """A writer for a new file in this attempt's raw-data prefix; `finish()` returns it."""
        handle = host_call(wit().data.create_file, name, format or cls.format)
        return FileWriter(handle, cls)

    @classmethod
    def from_bytes(cls, data, name=None, format=None):
        writer = cls.create(name, format)
        writer.write(data)
        return writer.finish()


class _Reader(io.RawIOBase):
    def __init__(self, handle):
        self._handle = handle
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        data = host_call(self._handle.read, min(len(buffer), READ_CHUNK))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._handle.size()
        if offset < 0:
            raise ValueError(f"seek to {offset}: before the start of the file")
        host_call(self._handle.seek, offset)
        self._pos = offset
        return offset

    def tell(self):
        return self._pos

    def close(self):
        if not self.closed:
            self._handle.__exit__(None, None, None)
        super().close()


class FileWriter:
    """A new file being written. Nothing is visible until `finish()`; an unfinished writer
    leaves nothing behind."""

    def __init__(self, handle, kind):
        self._handle = handle
        self._kind = kind

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        view = memoryview(data)
        for start in range(0, len(view), READ_CHUNK):
            host_call(self._handle.write, bytes(view[start:start + READ_CHUNK]))
        return len(view)

    def finish(self):
        """Completes the file: the host measured its size and SHA-256 as the bytes streamed."""
        reference = host_call(wit().data.FileWriter.finish, self._handle)
        self._handle = None
        return self._kind(_meta_of(reference))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.__exit__(None, None, None)
            self._handle = None
        return False


class Dir(Reference):
    """A directory of files."""

    _ext_code = _msgpack.DIR_EXT

    @classmethod
    def _describe(cls, fmt=None):
        return ("dir",)

    def entries(self):
        """Every file under the directory, recursively, sorted by name: `(name, File)`."""
        return [(e.name, File(_meta_of(e.file))) for e in host_call(wit().data.list_dir, self.uri)]

    @classmethod
    def create(cls, name=None):
        return DirBuilder(host_call(wit().data.create_dir, name))


class DirBuilder:
    """A new directory being built from files; `finish()` returns the `Dir`."""

    def __init__(self, handle):
        self._handle = handle

    def create_file(self, name):
        return FileWriter(host_call(self._handle.create_file, name), File)

    def add(self, name, file):
        host_call(self._handle.add_file, name, file.uri)

    def finish(self):
        reference = host_call(wit().data.DirWriter.finish, self._handle)
        self._handle = None
        return Dir(_meta_of(reference))


class DataFrame(Reference):
    """A table. `DataFrame["csv"]` declares its format ("parquet" when none is given).

    pyarrow does not run in WebAssembly, so the host gives a column-batch view: each batch is a
    dict from column name to a list of values, and the host does the Parquet/Arrow/CSV work.
    """

    _ext_code = _msgpack.FRAME_EXT
    format = "parquet"

    @classmethod
    def _describe(cls, fmt=None):
        return ("dataframe", fmt or cls.format, [])

    @property
    def rows(self):
        return self._meta.get("rows")

    @property
    def columns(self):
        return [tuple(c) for c in self._meta.get("columns", [])]

    def batches(self, columns=None, batch_rows=DEFAULT_BATCH_ROWS):
        """Yields batches (column name -> list of values), reading only `columns` if given."""
        reader = host_call(wit().data.open_frame, self.uri, columns, batch_rows)
        try:
            while True:
                chunk = host_call(reader.next_columns)
                if chunk is None:
                    return
                # A list of [column, values] pairs: a dict keeps the column order.
                yield {name: values for name, values in _msgpack.decode(chunk)}
        finally:
            reader.__exit__(None, None, None)

    def rows_as_dicts(self, columns=None, batch_rows=DEFAULT_BATCH_ROWS):
        """Yields one dict per row (column name -> value)."""
        for batch in self.batches(columns, batch_rows):
            names = list(batch)
            for values in zip(*(batch[n] for n in names)):
                yield dict(zip(names, values))

    @classmethod
    def writer(cls, name=None, format=None, columns=None):
        """A writer taking batches (column name -> list of values). `columns`, a list of
        (name, Arrow type name) pairs, makes the host enforce that schema; otherwise the first
        batch's values decide the column types."""
        handle = host_call(wit().data.create_frame, name, format or cls.format, list(columns or []))
        return FrameWriter(handle, cls)


class FrameWriter:
    def __init__(self, handle, kind):
        self._handle = handle
        self._kind = kind

    def write(self, batch):
        """Appends rows given as a dict from column name to a list of values."""
        host_call(self._handle.write_columns, _msgpack.encode([[k, list(v)] for k, v in batch.items()]))

    def finish(self):
        reference = host_call(wit().data.FrameWriter.finish, self._handle)
        self._handle = None
        return self._kind(_meta_of(reference))


def from_ext(code, data):
    """Decoding hook: extension types 2, 3, 4 become `File`, `Dir`, `DataFrame`."""
    kind = {_msgpack.FILE_EXT: File, _msgpack.DIR_EXT: Dir, _msgpack.FRAME_EXT: DataFrame}.get(code)
    if kind is None:
        return _msgpack.Ext(code, data)
    meta = _msgpack.decode(data)
    if not isinstance(meta, dict) or not isinstance(meta.get("uri"), str):
        raise _msgpack.MsgpackError(f"a {kind.__name__} reference without a uri")
    return kind(meta)
