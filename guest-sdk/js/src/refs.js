// Files, directories and frames passed by reference: the host streams every byte on demand and
// refuses references the attempt was not given (`HostError` with code "not-granted").

import * as data from "sluice:task/data@0.1.0";
import { decode, encode, isBytes, Ext, FILE_EXT, DIR_EXT, FRAME_EXT } from "./msgpack.js";

/** Largest chunk asked of the host per read (the host answers at most 8 MiB). */
export const READ_CHUNK = 1 << 20;
/** Rows per frame batch unless the caller says otherwise. */
export const DEFAULT_BATCH_ROWS = 65536;

/** A host `data` error: `code` is not-granted, missing, invalid or store. */
export class HostError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "HostError";
    this.code = code;
  }
}

/** Calls a `data` import, turning its typed error into a HostError. */
export function hostCall(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e && e.payload && typeof e.payload.tag === "string") throw new HostError(e.payload.tag, e.payload.val);
    throw e;
  }
}

export class Reference {
  constructor(meta) {
    this.meta = Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== null && v !== undefined));
  }
  get uri() {
    return this.meta.uri;
  }
  get size() {
    return this.meta.size ?? null;
  }
  get sha256() {
    return this.meta.sha256 ?? null;
  }
  get format() {
    return this.meta.format ?? null;
  }
  toExt() {
    return new Ext(this.constructor.EXT, encode(this.meta));
  }
  toString() {
    return this.uri;
  }
}

function metaOf(reference) {
  return {
    uri: reference.uri,
    size: reference.size,
    sha256: reference.sha256,
    format: reference.format,
    rows: reference.rows,
    columns: reference.columns && reference.columns.length ? reference.columns : undefined,
  };
}

export class File extends Reference {
  static EXT = FILE_EXT;

  /** Names an object by URI; the host opens it only if the attempt holds it. */
  static fromUri(uri, format) {
    return new File({ uri, format });
  }
  withFormat(format) {
    return this.meta.format ? this : new File({ ...this.meta, format });
  }
  /** A reader: `read(max)` (an empty array at the end), `seek(offset)`, `size()`, `close()`. */
  open() {
    return hostCall(data.openFile, this.uri);
  }
  /** The content in chunks of at most `chunkSize` bytes. */
  *chunks(chunkSize = READ_CHUNK) {
    const reader = this.open();
    for (;;) {
      const chunk = hostCall(() => reader.read(chunkSize));
      if (chunk.length === 0) return;
      yield chunk;
    }
  }
  async *[Symbol.asyncIterator]() {
    yield* this.chunks();
  }
  bytes() {
    const parts = [...this.chunks()];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  text() {
    return new TextDecoder().decode(this.bytes());
  }
  /** A writer for a new file in this attempt's raw-data prefix; `finish()` returns the File. */
  static create(name, format) {
    return new FileWriter(hostCall(data.createFile, name ?? undefined, format ?? undefined));
  }
  static fromBytes(content, name, format) {
    const w = File.create(name, format);
    w.write(content);
    return w.finish();
  }
}

export class FileWriter {
  constructor(handle) {
    this.handle = handle;
  }
  /** Appends bytes (a string is written as UTF-8). */
  write(content) {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    if (!isBytes(bytes)) throw new TypeError("FileWriter.write: expected a Uint8Array or a string");
    for (let at = 0; at < bytes.length; at += READ_CHUNK) {
      hostCall(() => this.handle.write(bytes.subarray(at, at + READ_CHUNK)));
    }
  }
  /** Completes the file: the host measured its size and SHA-256 as the bytes streamed. */
  finish() {
    const reference = hostCall(data.FileWriter.finish, this.handle);
    this.handle = null;
    return new File(metaOf(reference));
  }
}

export class Dir extends Reference {
  static EXT = DIR_EXT;

  static fromUri(uri) {
    return new Dir({ uri });
  }
  /** Every file under the directory, recursively, sorted by name: `[name, File]` pairs. */
  entries() {
    return hostCall(data.listDir, this.uri).map((e) => [e.name, new File(metaOf(e.file))]);
  }
  static create(name) {
    return new DirBuilder(hostCall(data.createDir, name ?? undefined));
  }
}

export class DirBuilder {
  constructor(handle) {
    this.handle = handle;
  }
  createFile(name) {
    return new FileWriter(hostCall(() => this.handle.createFile(name)));
  }
  add(name, file) {
    hostCall(() => this.handle.addFile(name, file.uri));
  }
  finish() {
    const reference = hostCall(data.DirWriter.finish, this.handle);
    this.handle = null;
    return new Dir(metaOf(reference));
  }
}

/** A table. The host gives a column-batch view: each batch is an object from column name to
 * an array of values, and the host does the Parquet / Arrow IPC / CSV encoding. */
export class DataFrame extends Reference {
  static EXT = FRAME_EXT;

  static fromUri(uri, format = "parquet") {
    return new DataFrame({ uri, format });
  }
  get rows() {
    return this.meta.rows ?? null;
  }
  get columns() {
    return this.meta.columns ?? [];
  }
  /** Batches of at most `batchRows` rows, reading only `columns` if given. */
  *batches({ columns, batchRows = DEFAULT_BATCH_ROWS } = {}) {
    const reader = hostCall(data.openFrame, this.uri, columns ?? undefined, batchRows);
    for (;;) {
      const chunk = hostCall(() => reader.nextColumns());
      if (chunk === undefined || chunk === null) return;
      // A list of [column, values] pairs, in column order.
      yield Object.fromEntries(decode(chunk));
    }
  }
  /** One object per row (column name -> value). */
  *rowObjects(options) {
    for (const batch of this.batches(options)) {
      const names = Object.keys(batch);
      const n = names.length ? batch[names[0]].length : 0;
      for (let i = 0; i < n; i++) yield Object.fromEntries(names.map((c) => [c, batch[c][i]]));
    }
  }
  /** A writer taking batches; `columns` ([name, Arrow type] pairs) makes the host enforce a
   * schema, otherwise the first batch's values decide the column types. */
  static writer(name, { format = "parquet", columns = [] } = {}) {
    return new FrameWriter(hostCall(data.createFrame, name ?? undefined, format, columns));
  }
}

export class FrameWriter {
  constructor(handle) {
    this.handle = handle;
  }
  write(batch) {
    hostCall(() => this.handle.writeColumns(encode(Object.entries(batch))));
  }
  finish() {
    const reference = hostCall(data.FrameWriter.finish, this.handle);
    this.handle = null;
    return new DataFrame(metaOf(reference));
  }
}

/** Decoding hook: extension types 2, 3, 4 become File, Dir, DataFrame. */
export function fromExt(code, payload) {
  const kind = { [FILE_EXT]: File, [DIR_EXT]: Dir, [FRAME_EXT]: DataFrame }[code];
  if (!kind) return new Ext(code, payload);
  const meta = decode(payload);
  if (!meta || typeof meta.uri !== "string") throw new Error(`a ${kind.name} reference without a uri`);
  return new kind(meta);
}
