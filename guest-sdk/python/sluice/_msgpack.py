"""MessagePack in pure Python, with the extension types the sluice host uses.

Pure Python on purpose: it is bundled into the component, and nothing native runs inside
componentize-py's CPython. Maps are written with sorted keys, integers in their shortest form
and floats as float64, so equal values give equal bytes (trace arguments are hashed).
"""

import datetime as _dt
import struct

TIMESTAMP_EXT = -1
DURATION_EXT = 1
FILE_EXT = 2
DIR_EXT = 3
FRAME_EXT = 4

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NANOS = 1_000_000_000


class MsgpackError(ValueError):
    """A document that is not MessagePack, or a value that has no MessagePack form."""


class Ext:
    """An extension value this module does not interpret (references, for the SDK to wrap)."""

    __slots__ = ("code", "data")

    def __init__(self, code, data):
        self.code = code
        self.data = bytes(data)

    def __eq__(self, other):
        return isinstance(other, Ext) and (self.code, self.data) == (other.code, other.data)

    def __repr__(self):
        return f"Ext({self.code}, {self.data!r})"


def encode(value, default=None):
    """Encodes `value`. `default(obj)` turns other objects into encodable ones."""
    out = bytearray()
    _write(out, value, default, 0)
    return bytes(out)


_MAX_DEPTH = 512


def _write(out, v, default, depth):
    if depth > _MAX_DEPTH:
        raise MsgpackError("value nested too deeply")
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        _write_int(out, v)
    elif isinstance(v, float):
        out.append(0xCB)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        raw = v.encode("utf-8")
        n = len(raw)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes((0xD9, n))
        elif n < 0x10000:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += raw
    elif isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        n = len(raw)
        if n < 0x100:
            out += bytes((0xC4, n))
        elif n < 0x10000:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += raw
    elif isinstance(v, (list, tuple)):
        _write_len(out, len(v), 0x90, 16, 0xDC, 0xDD)
        for item in v:
            _write(out, item, default, depth + 1)
    elif isinstance(v, dict):
        _write_len(out, len(v), 0x80, 16, 0xDE, 0xDF)
        for key in sorted(v, key=_key_order):
            _write(out, key, default, depth + 1)
            _write(out, v[key], default, depth + 1)
    elif isinstance(v, _dt.datetime):
        _write_ext(out, TIMESTAMP_EXT, _timestamp_payload(v))
    elif isinstance(v, _dt.timedelta):
        seconds = v.days * 86400 + v.seconds
        _write_ext(out, DURATION_EXT, struct.pack(">qI", seconds, v.microseconds * 1000))
    elif isinstance(v, Ext):
        _write_ext(out, v.code, v.data)
    elif default is not None:
        _write(out, default(v), None, depth + 1)
    else:
        raise MsgpackError(f"cannot encode a {type(v).__name__}")


def _key_order(key):
    if not isinstance(key, str):
        raise MsgpackError(f"map keys must be strings, found {type(key).__name__}")
    return key.encode("utf-8")


def _write_int(out, n):
    if 0 <= n < 0x80:
        out.append(n)
    elif -32 <= n < 0:
        out.append(n & 0xFF)
    elif 0 <= n < 0x100:
        out += bytes((0xCC, n))
    elif 0 <= n < 0x10000:
        out += b"\xcd" + struct.pack(">H", n)
    elif 0 <= n < 0x1_0000_0000:
        out += b"\xce" + struct.pack(">I", n)
    elif 0 <= n < 1 << 64:
        out += b"\xcf" + struct.pack(">Q", n)
    elif -0x80 <= n:
        out += b"\xd0" + struct.pack(">b", n)
    elif -0x8000 <= n:
        out += b"\xd1" + struct.pack(">h", n)
    elif -0x8000_0000 <= n:
        out += b"\xd2" + struct.pack(">i", n)
    elif -(1 << 63) <= n:
        out += b"\xd3" + struct.pack(">q", n)
    else:
        raise MsgpackError(f"integer {n} does not fit in 64 bits")


def _write_len(out, n, fix, fix_limit, code16, code32):
    if n < fix_limit:
        out.append(fix | n)
    elif n < 0x10000:
        out += bytes((code16,)) + struct.pack(">H", n)
    else:
        out += bytes((code32,)) + struct.pack(">I", n)


def _write_ext(out, code, data):
    n = len(data)
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if n in fixed:
        out.append(fixed[n])
    elif n < 0x100:
        out += bytes((0xC7, n))
    elif n < 0x10000:
        out += b"\xc8" + struct.pack(">H", n)
    else:
        out += b"\xc9" + struct.pack(">I", n)
    out += struct.pack(">b", code)
    out += data


def _timestamp_payload(when):
    if when.tzinfo is None:
        raise MsgpackError(f"datetime {when} has no time zone; sluice datetimes are UTC instants")
    delta = when - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000
    # The shortest of MessagePack's three timestamp layouts, as the host writes them.
    if nanos == 0 and 0 <= seconds < 1 << 32:
        return struct.pack(">I", seconds)
    if 0 <= seconds < 1 << 34:
        return struct.pack(">Q", (nanos << 34) | seconds)
    return struct.pack(">Iq", nanos, seconds)


def decode(data, ext_hook=None):
    """Decodes one document. `ext_hook(code, data)` turns unknown extensions into objects."""
    reader = _Reader(bytes(data), ext_hook)
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise MsgpackError(f"{len(reader.data) - reader.pos} bytes left after the document")
    return value


class _Reader:
    def __init__(self, data, ext_hook):
        self.data = data
        self.pos = 0
        self.ext_hook = ext_hook

    def take(self, n):
        end = self.pos + n
        if end > len(self.data):
            raise MsgpackError("document ends in the middle of a value")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, depth):
        if depth > _MAX_DEPTH:
            raise MsgpackError("document nested too deeply")
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        sized = {
            0xC4: (">B", self.binary), 0xC5: (">H", self.binary), 0xC6: (">I", self.binary),
            0xD9: (">B", self.text), 0xDA: (">H", self.text), 0xDB: (">I", self.text),
            0xDC: (">H", lambda n: self.array(n, depth)), 0xDD: (">I", lambda n: self.array(n, depth)),
            0xDE: (">H", lambda n: self.map(n, depth)), 0xDF: (">I", lambda n: self.map(n, depth)),
            0xC7: (">B", self.ext), 0xC8: (">H", self.ext), 0xC9: (">I", self.ext),
        }
        if b in sized:
            fmt, read = sized[b]
            return read(self.unpack(fmt))
        numbers = {
            0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
        }
        if b in numbers:
            return self.unpack(numbers[b])
        fixed_ext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
        if b in fixed_ext:
            return self.ext(fixed_ext[b])
        raise MsgpackError(f"byte 0x{b:02x} at offset {self.pos - 1} starts no MessagePack value")

    def binary(self, n):
        return self.take(n)

    def text(self, n):
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MsgpackError(f"string is not UTF-8: {e}") from None

    def array(self, n, depth):
        return [self.value(depth + 1) for _ in range(n)]

    def map(self, n, depth):
        out = {}
        for _ in range(n):
            key = self.value(depth + 1)
            if not isinstance(key, str):
                raise MsgpackError(f"map keys must be strings, found {type(key).__name__}")
            out[key] = self.value(depth + 1)
        return out

    def ext(self, n):
        code = self.unpack(">b")
        data = self.take(n)
        if code == TIMESTAMP_EXT:
            return _decode_timestamp(data)
        if code == DURATION_EXT:
            if len(data) != 12:
                raise MsgpackError(f"duration must be 12 bytes, found {len(data)}")
            seconds, nanos = struct.unpack(">qI", data)
            return _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
        if self.ext_hook is not None:
            return self.ext_hook(code, data)
        return Ext(code, data)


def _decode_timestamp(data):
    if len(data) == 4:
        seconds, nanos = struct.unpack(">I", data)[0], 0
    elif len(data) == 8:
        packed = struct.unpack(">Q", data)[0]
        seconds, nanos = packed & ((1 << 34) - 1), packed >> 34
    elif len(data) == 12:
        nanos, seconds = struct.unpack(">Iq", data)
    else:
        raise MsgpackError(f"timestamp must be 4, 8 or 12 bytes, found {len(data)}")
    # Python datetimes hold microseconds: finer digits are dropped.
    return _EPOCH + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
