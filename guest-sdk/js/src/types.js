// Type declarations for task inputs and outputs, their descriptor tables, and typed conversion
// of values to and from their wire form. The mapping is the Rust SDK's, so a JS task and its
// Rust twin have the same interface hash:
//
//   t.int  t.float  t.bool  t.string  t.bytes (Uint8Array)  t.datetime (Date)
//   t.duration (Duration)  t.none (null)  t.list(T)  t.map(T) (object)  t.record({f: T})
//   t.enum(["A", "B"]) (the name)  t.optional(T) (null)  t.union(A, B)
//   t.file(format?)  t.dir  t.dataframe(format = "parquet")

import { Duration, F64, isBytes } from "./msgpack.js";
import { DataFrame, Dir, File, Reference } from "./refs.js";

export class ValueMismatch extends Error {}

const simple = (kind) => Object.freeze({ kind });

export const t = Object.freeze({
  int: simple("int"),
  float: simple("float"),
  bool: simple("bool"),
  string: simple("string"),
  bytes: simple("bytes"),
  datetime: simple("datetime"),
  duration: simple("duration"),
  none: simple("none"),
  dir: simple("dir"),
  list: (of) => ({ kind: "list", of: check(of, "t.list") }),
  map: (of) => ({ kind: "map", of: check(of, "t.map") }),
  record: (fields) => ({
    kind: "record",
    fields: Object.entries(fields).map(([name, ty]) => [name, check(ty, `t.record field ${name}`)]),
  }),
  enum: (names) => ({ kind: "enum", names: [...names] }),
  optional: (of) => ({ kind: "optional", of: check(of, "t.optional") }),
  union: (...variants) => ({ kind: "union", variants: variants.map((v) => check(v, "t.union")) }),
  file: (format) => ({ kind: "file", format: format ?? null }),
  dataframe: (format = "parquet") => ({ kind: "dataframe", format }),
});

function check(ty, where) {
  if (!ty || typeof ty.kind !== "string") throw new TypeError(`${where}: expected a type such as t.int, got ${ty}`);
  return ty;
}

/** Adds `ty` to `nodes` (WIT type-node variants) and returns its index. */
export function describe(nodes, ty) {
  const push = (node) => nodes.push(node) - 1;
  switch (ty.kind) {
    case "list":
    case "map":
    case "optional":
      return push({ tag: ty.kind, val: describe(nodes, ty.of) });
    case "record":
      return push({ tag: "record", val: ty.fields.map(([name, f]) => ({ name, ty: describe(nodes, f) })) });
    case "enum":
      return push({ tag: "enum", val: ty.names });
    case "union":
      return push({ tag: "union", val: ty.variants.map((v) => describe(nodes, v)) });
    case "file":
      return push({ tag: "file", val: { format: ty.format ?? undefined } });
    case "dataframe":
      return push({ tag: "dataframe", val: { format: ty.format ?? undefined, columns: [] } });
    default:
      return push({ tag: ty.kind });
  }
}

/** `value` of type `ty` as MessagePack-ready data. A value that does not have its type is sent
 * as it is: the host validates every document and names the path of what is wrong. */
export function toWire(ty, value) {
  if (value === undefined) value = null;
  switch (ty.kind) {
    case "float":
      return typeof value === "number" ? new F64(value) : value;
    case "list":
      return Array.isArray(value) ? value.map((v) => toWire(ty.of, v)) : anyToWire(value);
    case "map":
      return isPlainObject(value)
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toWire(ty.of, v)]))
        : anyToWire(value);
    case "record":
      return isPlainObject(value)
        ? Object.fromEntries(ty.fields.map(([name, f]) => [name, toWire(f, value[name])]))
        : anyToWire(value);
    case "optional":
      return value === null ? null : toWire(ty.of, value);
    case "union": {
      const variant = ty.variants.find((v) => isA(v, value));
      return variant ? toWire(variant, value) : anyToWire(value);
    }
    default:
      return anyToWire(value);
  }
}

/** A value without a declared type (the inputs of a call by name, a trace result). */
export function anyToWire(value) {
  if (value instanceof Reference) return value.toExt();
  if (Array.isArray(value)) return value.map(anyToWire);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, anyToWire(v)]));
  return value === undefined ? null : value;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;
}

/** Whether a value is of type `ty`, to pick a union's variant (the host takes the first fit). */
export function isA(ty, v) {
  switch (ty.kind) {
    case "none":
      return v === null || v === undefined;
    case "int":
      return (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";
    case "float":
      return typeof v === "number";
    case "bool":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "bytes":
      return isBytes(v);
    case "datetime":
      return v instanceof Date;
    case "duration":
      return v instanceof Duration;
    case "list":
      return Array.isArray(v) && v.every((x) => isA(ty.of, x));
    case "map":
      return isPlainObject(v) && Object.values(v).every((x) => isA(ty.of, x));
    case "record":
      return isPlainObject(v) && ty.fields.every(([name, f]) => isA(f, v[name] ?? null));
    case "enum":
      return typeof v === "string" && ty.names.includes(v);
    case "optional":
      return v === null || v === undefined || isA(ty.of, v);
    case "union":
      return ty.variants.some((x) => isA(x, v));
    case "file":
      return v instanceof File;
    case "dir":
      return v instanceof Dir;
    case "dataframe":
      return v instanceof DataFrame;
    default:
      return false;
  }
}

/** Decoded data as a value of type `ty` (decoding already made references, dates, durations). */
export function fromWire(ty, raw) {
  if (raw === undefined) raw = null;
  switch (ty.kind) {
    case "list":
      return Array.isArray(raw) ? raw.map((v) => fromWire(ty.of, v)) : raw;
    case "map":
      return isPlainObject(raw)
        ? Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, fromWire(ty.of, v)]))
        : raw;
    case "record":
      return isPlainObject(raw)
        ? Object.fromEntries(ty.fields.map(([name, f]) => [name, fromWire(f, raw[name] ?? null)]))
        : raw;
    case "optional":
      return raw === null ? null : fromWire(ty.of, raw);
    case "union": {
      const variant = ty.variants.find((v) => isA(v, raw));
      return variant ? fromWire(variant, raw) : raw;
    }
    case "file":
      return raw instanceof File && ty.format ? raw.withFormat(ty.format) : raw;
    default:
      return raw;
  }
}
