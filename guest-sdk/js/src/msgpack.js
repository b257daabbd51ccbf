// MessagePack in plain JavaScript, with the extension types the sluice host uses.
//
// Maps are written with sorted keys and integers in their shortest form, so equal values give
// equal bytes (trace arguments are hashed). A JS number is ambiguous (2 and 2.0 are the same
// number), so a float is written as a float only when the declared type says so: the typed
// encoder in types.js wraps such numbers in `F64`.

export const TIMESTAMP_EXT = -1;
export const DURATION_EXT = 1;
export const FILE_EXT = 2;
export const DIR_EXT = 3;
export const FRAME_EXT = 4;

const MAX_DEPTH = 512;
const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder("utf-8", { fatal: true });

export class MsgpackError extends Error {}

/** A number to be written as a 64-bit float. */
export class F64 {
  constructor(value) {
    this.value = value;
  }
}

/** An extension value this module does not interpret. */
export class Ext {
  constructor(code, data) {
    this.code = code;
    this.data = data;
  }
}

/** A signed duration: whole seconds and nanoseconds (0 ≤ nanos < 1e9), like the host's. */
export class Duration {
  constructor(seconds, nanos = 0) {
    this.seconds = seconds;
    this.nanos = nanos;
  }
  static fromMillis(ms) {
    const seconds = Math.floor(ms / 1000);
    return new Duration(seconds, Math.round((ms - seconds * 1000) * 1e6));
  }
  toMillis() {
    return Number(this.seconds) * 1000 + this.nanos / 1e6;
  }
}

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  byte(b) {
    this.reserve(1);
    this.buf[this.len++] = b;
  }
  bytes(data) {
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }
  num(kind, n, value) {
    this.reserve(n);
    this.view[kind](this.len, value);
    this.len += n;
  }
  done() {
    return this.buf.slice(0, this.len);
  }
}

export function encode(value) {
  const w = new Writer();
  write(w, value, 0);
  return w.done();
}

function write(w, v, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError("value nested too deeply");
  if (v === null || v === undefined) w.byte(0xc0);
  else if (v === true) w.byte(0xc3);
  else if (v === false) w.byte(0xc2);
  else if (v instanceof F64) {
    w.byte(0xcb);
    w.num("setFloat64", 8, v.value);
  } else if (typeof v === "number") {
    if (Number.isInteger(v)) writeInt(w, BigInt(v));
    else {
      w.byte(0xcb);
      w.num("setFloat64", 8, v);
    }
  } else if (typeof v === "bigint") writeInt(w, v);
  else if (typeof v === "string") {
    const raw = TEXT_ENCODER.encode(v);
    writeHeader(w, raw.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
    w.bytes(raw);
  } else if (isBytes(v)) {
    writeHeader(w, v.length, null, 0, 0xc4, 0xc5, 0xc6);
    w.bytes(v);
  } else if (Array.isArray(v)) {
    writeHeader(w, v.length, 0x90, 16, null, 0xdc, 0xdd);
    for (const item of v) write(w, item, depth + 1);
  } else if (v instanceof Date) {
    writeExt(w, TIMESTAMP_EXT, timestampPayload(v));
  } else if (v instanceof Duration) {
    const p = new Uint8Array(12);
    const view = new DataView(p.buffer);
    view.setBigInt64(0, BigInt(v.seconds));
    view.setUint32(8, v.nanos);
    writeExt(w, DURATION_EXT, p);
  } else if (v instanceof Ext) {
    writeExt(w, v.code, v.data);
  } else if (typeof v === "object") {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    keys.sort(compareUtf8);
    writeHeader(w, keys.length, 0x80, 16, null, 0xde, 0xdf);
    for (const k of keys) {
      write(w, k, depth + 1);
      write(w, v[k], depth + 1);
    }
  } else throw new MsgpackError(`cannot encode a ${typeof v}`);
}

/** A Uint8Array, also one made in another realm (the component's bindings make theirs). */
export function isBytes(v) {
  return Object.prototype.toString.call(v) === "[object Uint8Array]";
}

function compareUtf8(a, b) {
  const x = TEXT_ENCODER.encode(a);
  const y = TEXT_ENCODER.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function writeHeader(w, n, fix, fixLimit, code8, code16, code32) {
  if (fix !== null && n < fixLimit) w.byte(fix | n);
  else if (code8 !== null && n < 0x100) {
    w.byte(code8);
    w.byte(n);
  } else if (n < 0x10000) {
    w.byte(code16);
    w.num("setUint16", 2, n);
  } else {
    w.byte(code32);
    w.num("setUint32", 4, n);
  }
}

function writeInt(w, n) {
  if (n >= 0n && n < 0x80n) w.byte(Number(n));
  else if (n < 0n && n >= -32n) w.byte(Number(n) & 0xff);
  else if (n >= 0n && n < 0x100n) {
    w.byte(0xcc);
    w.byte(Number(n));
  } else if (n >= 0n && n < 0x10000n) {
    w.byte(0xcd);
    w.num("setUint16", 2, Number(n));
  } else if (n >= 0n && n < 0x100000000n) {
    w.byte(0xce);
    w.num("setUint32", 4, Number(n));
  } else if (n >= 0n && n < 1n << 64n) {
    w.byte(0xcf);
    w.num("setBigUint64", 8, n);
  } else if (n >= -0x80n) {
    w.byte(0xd0);
    w.num("setInt8", 1, Number(n));
  } else if (n >= -0x8000n) {
    w.byte(0xd1);
    w.num("setInt16", 2, Number(n));
  } else if (n >= -0x80000000n) {
    w.byte(0xd2);
    w.num("setInt32", 4, Number(n));
  } else if (n >= -(1n << 63n)) {
    w.byte(0xd3);
    w.num("setBigInt64", 8, n);
  } else throw new MsgpackError(`integer ${n} does not fit in 64 bits`);
}

function writeExt(w, code, data) {
  const fixed = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  if (fixed[data.length] !== undefined) w.byte(fixed[data.length]);
  else writeHeader(w, data.length, null, 0, 0xc7, 0xc8, 0xc9);
  w.num("setInt8", 1, code);
  w.bytes(data);
}

function timestampPayload(date) {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new MsgpackError("an invalid Date");
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1e6;
  // The shortest of MessagePack's three timestamp layouts, as the host writes them.
  if (nanos === 0 && seconds >= 0 && seconds < 2 ** 32) {
    const p = new Uint8Array(4);
    new DataView(p.buffer).setUint32(0, seconds);
    return p;
  }
  if (seconds >= 0 && seconds < 2 ** 34) {
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, (BigInt(nanos) << 34n) | BigInt(seconds));
    return p;
  }
  const p = new Uint8Array(12);
  const view = new DataView(p.buffer);
  view.setUint32(0, nanos);
  view.setBigInt64(4, BigInt(seconds));
  return p;
}

/** Decodes one document; `extHook(code, data)` turns other extensions into objects. */
export function decode(data, extHook) {
  const r = new Reader(data, extHook);
  const value = r.value(0);
  if (r.pos !== data.length) throw new MsgpackError(`${data.length - r.pos} bytes left after the document`);
  return value;
}

class Reader {
  constructor(data, extHook) {
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.pos = 0;
    this.extHook = extHook;
  }
  need(n) {
    if (this.pos + n > this.data.length) throw new MsgpackError("document ends in the middle of a value");
    const at = this.pos;
    this.pos += n;
    return at;
  }
  num(kind, n) {
    return this.view[kind](this.need(n));
  }
  take(n) {
    const at = this.need(n);
    // A copy made here, so that `instanceof Uint8Array` holds in the author's code.
    const out = new Uint8Array(n);
    out.set(this.data.subarray(at, at + n));
    return out;
  }
  value(depth) {
    if (depth > MAX_DEPTH) throw new MsgpackError("document nested too deeply");
    const b = this.num("getUint8", 1);
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0xa0 && b <= 0xbf) return this.text(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.take(this.num("getUint8", 1));
      case 0xc5: return this.take(this.num("getUint16", 2));
      case 0xc6: return this.take(this.num("getUint32", 4));
      case 0xc7: return this.ext(this.num("getUint8", 1));
      case 0xc8: return this.ext(this.num("getUint16", 2));
      case 0xc9: return this.ext(this.num("getUint32", 4));
      case 0xca: return this.num("getFloat32", 4);
      case 0xcb: return this.num("getFloat64", 8);
      case 0xcc: return this.num("getUint8", 1);
      case 0xcd: return this.num("getUint16", 2);
      case 0xce: return this.num("getUint32", 4);
      case 0xcf: return smallest(this.num("getBigUint64", 8));
      case 0xd0: return this.num("getInt8", 1);
      case 0xd1: return this.num("getInt16", 2);
      case 0xd2: return this.num("getInt32", 4);
      case 0xd3: return smallest(this.num("getBigInt64", 8));
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.text(this.num("getUint8", 1));
      case 0xda: return this.text(this.num("getUint16", 2));
      case 0xdb: return this.text(this.num("getUint32", 4));
      case 0xdc: return this.array(this.num("getUint16", 2), depth);
      case 0xdd: return this.array(this.num("getUint32", 4), depth);
      case 0xde: return this.map(this.num("getUint16", 2), depth);
      case 0xdf: return this.map(this.num("getUint32", 4), depth);
      default:
        throw new MsgpackError(`byte 0x${b.toString(16)} at offset ${this.pos - 1} starts no MessagePack value`);
    }
  }
  text(n) {
    const at = this.need(n);
    try {
      return TEXT_DECODER.decode(this.data.subarray(at, at + n));
    } catch {
      throw new MsgpackError("string is not UTF-8");
    }
  }
  array(n, depth) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }
  map(n, depth) {
    const entries = [];
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new MsgpackError(`map keys must be strings, found ${typeof key}`);
      entries.push([key, this.value(depth + 1)]);
    }
    // fromEntries defines own properties: a "__proto__" key stays a plain key.
    return Object.fromEntries(entries);
  }
  ext(n) {
    const code = this.num("getInt8", 1);
    const data = this.take(n);
    if (code === TIMESTAMP_EXT) return decodeTimestamp(data);
    if (code === DURATION_EXT) {
      if (data.length !== 12) throw new MsgpackError(`duration must be 12 bytes, found ${data.length}`);
      const view = new DataView(data.buffer, data.byteOffset, 12);
      return new Duration(smallest(view.getBigInt64(0)), view.getUint32(8));
    }
    return this.extHook ? this.extHook(code, data) : new Ext(code, data);
  }
}

/** A 64-bit integer as a number when it is exact, else a BigInt. */
function smallest(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function decodeTimestamp(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let seconds;
  let nanos;
  if (data.length === 4) {
    seconds = view.getUint32(0);
    nanos = 0;
  } else if (data.length === 8) {
    const packed = view.getBigUint64(0);
    seconds = Number(packed & ((1n << 34n) - 1n));
    nanos = Number(packed >> 34n);
  } else if (data.length === 12) {
    nanos = view.getUint32(0);
    seconds = Number(view.getBigInt64(4));
  } else throw new MsgpackError(`timestamp must be 4, 8 or 12 bytes, found ${data.length}`);
  // A JS Date holds milliseconds: finer digits are dropped.
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6));
}
