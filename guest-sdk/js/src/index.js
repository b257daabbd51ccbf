// sluice for JavaScript task authors. See guest-sdk/js/README.md.
//
//   import { task, t } from "sluice";
//   export const add_one = task({ inputs: { x: t.int }, output: t.int }, (x) => x + 1);
//
// Every exported task becomes a task of the component's environment, named after its export.

import { log as hostLog } from "sluice:task/log@0.1.0";
import * as hostTasks from "sluice:task/tasks@0.1.0";
import * as hostTrace from "sluice:task/trace@0.1.0";
import { decode, encode, Duration } from "./msgpack.js";
import { fromExt, File, Dir, DataFrame, HostError } from "./refs.js";
import { t, describe, toWire, anyToWire, fromWire } from "./types.js";

export { t, Duration, File, Dir, DataFrame, HostError };
export { DirBuilder, FileWriter, FrameWriter } from "./refs.js";

/** The task ran and reports it could not do its job; `retryable` says whether another attempt
 * could succeed. */
export class UserError extends Error {
  constructor(message, { retryable = false } = {}) {
    super(message);
    this.name = "UserError";
    this.retryable = retryable;
  }
}

/** An error another attempt might not hit (a flaky dependency, say). */
export function retryable(message) {
  return new UserError(message, { retryable: true });
}

const SETTINGS = [
  "inputs", "output", "outputs", "name", "doc", "cache", "ignoredInputs", "serialize",
  "cacheMaxAge", "cacheScope", "retries", "backoffMs", "timeoutMs", "inlineLimit", "memoryLimit",
];
const AGE_UNITS_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

/** A task: `fn` takes the inputs in their declared order. `decl.output` is one output (`o0`),
 * `decl.outputs` a list (the function returns an array), neither none. */
export function task(decl, fn) {
  const unknown = Object.keys(decl).filter((k) => !SETTINGS.includes(k));
  if (unknown.length) throw new TypeError(`task: unknown setting ${unknown.join(", ")} (known: ${SETTINGS.join(", ")})`);
  if (typeof fn !== "function") throw new TypeError("task: the second argument must be the task's function");
  const inputs = Object.entries(decl.inputs ?? {});
  const outputs = decl.outputs ?? (decl.output ? [decl.output] : []);
  const wrapped = (...args) => fn(...args);
  wrapped.sluiceTask = { decl, fn, inputs, outputs, name: decl.name ?? null };
  wrapped.call = (...args) => callTask(wrapped.sluiceTask, inputsOf(wrapped.sluiceTask, args));
  wrapped.submit = (...args) => submitTask(wrapped.sluiceTask, inputsOf(wrapped.sluiceTask, args));
  wrapped.map = (items, options) =>
    mapTask(wrapped.sluiceTask, items.map((item) => inputsOf(wrapped.sluiceTask, inputs.length === 1 ? [item] : item)), options);
  return wrapped;
}

function inputsOf(spec, args) {
  const doc = {};
  spec.inputs.forEach(([name, ty], i) => {
    if (args[i] !== undefined) doc[name] = toWire(ty, args[i]);
  });
  return doc;
}

function shape(values) {
  if (values.length === 0) return null;
  return values.length === 1 ? values[0] : values;
}

function ageMs(age) {
  if (age === undefined || typeof age === "number") return age === undefined ? undefined : BigInt(age);
  const m = /^\s*(\d+)\s*(ms|s|m|h|d)\s*$/.exec(String(age));
  if (!m) throw new TypeError(`cacheMaxAge ${age}: expected e.g. "30d", "12h", "500ms"`);
  return BigInt(m[1]) * BigInt(AGE_UNITS_MS[m[2]]);
}

const optU64 = (n) => (n === undefined || n === null ? undefined : BigInt(n));

function spec(name, s) {
  const d = s.decl;
  const types = [];
  const inputs = s.inputs.map(([n, ty]) => ({ name: n, doc: undefined, ty: describe(types, ty) }));
  const outputs = s.outputs.map((ty, i) => ({ name: `o${i}`, doc: undefined, ty: describe(types, ty) }));
  const cache = d.cache ?? "disable";
  const version = cache === "disable" ? { tag: "disable" } : cache === "auto" ? { tag: "auto" } : { tag: "override", val: cache };
  const ignored = typeof d.ignoredInputs === "string" ? d.ignoredInputs.split(",").map((x) => x.trim()) : d.ignoredInputs ?? [];
  for (const i of ignored) {
    if (!s.inputs.some(([n]) => n === i)) throw new TypeError(`task ${name}: ignored input ${i} is not an input`);
  }
  return {
    name,
    doc: d.doc,
    types,
    inputs,
    outputs,
    cache: {
      version,
      ignoredInputs: ignored,
      serialize: Boolean(d.serialize),
      maxAgeMs: ageMs(d.cacheMaxAge),
      scope: d.cacheScope === "global" ? "global" : "project-domain",
    },
    retry: { retries: d.retries ?? 0, backoffMs: BigInt(d.backoffMs ?? 0) },
    timeoutMs: optU64(d.timeoutMs),
    inlineLimitBytes: optU64(d.inlineLimit),
    memoryLimitBytes: optU64(d.memoryLimit),
  };
}

function userError(message, retry) {
  return { tag: "user", val: { message, retryable: retry } };
}

/** The `sluice:task/environment` export over the tasks of `module` (its exported tasks).
 * `build.mjs` generates the entry that calls this. */
export function environment(name, module) {
  const tasks = new Map();
  for (const [exportName, value] of Object.entries(module)) {
    if (typeof value === "function" && value.sluiceTask) {
      const s = value.sluiceTask;
      s.name = s.name ?? exportName;
      tasks.set(s.name, s);
    }
  }
  return {
    name: () => name,
    describe: () => [...tasks.entries()].map(([n, s]) => spec(n, s)),
    run(taskName, inputs) {
      const s = tasks.get(taskName);
      if (!s) {
        throw { tag: "failure", val: `no task named ${JSON.stringify(taskName)} in this environment (it has: ${[...tasks.keys()].join(", ")})` };
      }
      let result;
      try {
        const raw = decode(inputs, fromExt);
        const args = s.inputs.map(([n, ty]) => fromWire(ty, raw[n]));
        result = s.fn(...args);
        if (result instanceof Promise) throw new TypeError(`task ${taskName} returned a Promise: a task returns its value`);
      } catch (e) {
        throw taskError(e);
      }
      try {
        const values = s.outputs.length > 1 ? result : [result];
        const doc = {};
        s.outputs.forEach((ty, i) => {
          doc[`o${i}`] = toWire(ty, Array.isArray(values) ? values[i] : undefined);
        });
        return encode(doc);
      } catch (e) {
        // Outputs that have no MessagePack form (a function, a symbol ...): the task's result
        // could not be sent, which is not the task's own error.
        throw { tag: "failure", val: `task ${taskName}: encoding outputs: ${e && e.message ? e.message : String(e)}` };
      }
    },
  };
}

function taskError(e) {
  if (e instanceof UserError) return userError(e.message, e.retryable);
  if (e instanceof CallError) return userError(e.toString(), e.retryable);
  if (e instanceof Error) {
    console.error(`${e.name}: ${e.message}\n${e.stack ?? ""}`);
    return userError(`${e.name}: ${e.message}`, false);
  }
  return userError(`thrown: ${String(e)}`, false);
}

// ---- calls to other tasks ----

/** Why a call produced no outputs: the child's error kind (user, failure, trap, deadline ...)
 * or unknown-task / input / limit for a call refused before it started. */
export class CallError extends Error {
  constructor(e) {
    super(e.message);
    this.name = "CallError";
    this.task = e.task;
    this.action = e.action;
    this.kind = e.kind;
    this.retryable = e.retryable;
  }
  toString() {
    const action = this.action ? ` (action ${this.action})` : "";
    return `${this.task}${action} failed: (${this.kind}) ${this.message}`;
  }
}

function outputsOf(s, document) {
  const raw = decode(document, fromExt);
  if (s.outputs) return shape(s.outputs.map((ty, i) => fromWire(ty, raw[`o${i}`])));
  const keys = Object.keys(raw).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  return shape(keys.map((k) => raw[k]));
}

function callTask(s, inputs) {
  let document;
  try {
    document = hostTasks.call(s.name, encode(inputs));
  } catch (e) {
    if (e && e.payload) throw new CallError(e.payload);
    throw e;
  }
  return outputsOf(s, document);
}

function outcome(s, result) {
  return result.tag === "err" ? new CallError(result.val) : outputsOf(s, result.val);
}

const pending = new Map();

/** A submitted call; `result()` waits for it (and throws its CallError). */
export class Pending {
  constructor(s, id) {
    this.spec = s;
    this.id = id;
    this.done = false;
    this.outcome = undefined;
  }
  result() {
    while (!this.done) {
      if (!waitOne()) throw new Error(`call ${this.id} is not pending any more`);
    }
    if (this.outcome instanceof CallError) throw this.outcome;
    return this.outcome;
  }
}

function submitTask(s, inputs) {
  const id = hostTasks.submit(s.name, encode(inputs));
  const p = new Pending(s, id);
  pending.set(id, p);
  return p;
}

function waitOne() {
  const next = hostTasks.waitNext();
  if (next === undefined || next === null) return false;
  const [id, result] = next;
  const p = pending.get(id);
  if (p) {
    pending.delete(id);
    p.outcome = outcome(p.spec, result);
    p.done = true;
  }
  return true;
}

/** Yields the given submitted calls as they finish. */
export function* asCompleted(pendings) {
  const left = [...pendings];
  while (left.length) {
    const i = left.findIndex((p) => p.done);
    if (i < 0) {
      if (!waitOne()) throw new Error("asCompleted: calls are not pending any more");
      continue;
    }
    yield left.splice(i, 1)[0];
  }
}

function mapTask(s, documents, { concurrency = 0, returnErrors = false } = {}) {
  const results = hostTasks.map(s.name, documents.map((d) => encode(d)), concurrency).map((r) => outcome(s, r));
  if (!returnErrors) {
    const failed = results.find((r) => r instanceof CallError);
    if (failed) throw failed;
  }
  return results;
}

/** A task known only by name: its outputs come back as decoded. */
const untyped = (name) => ({ name, inputs: [], outputs: null });

/** Calls a task by name ("task", or "<environment>.<task>" in another environment) with an
 * object of inputs; returns its output (an array for several, null for none). */
export function call(name, inputs = {}) {
  return callTask(untyped(name), anyToWire(inputs));
}

export function submit(name, inputs = {}) {
  return submitTask(untyped(name), anyToWire(inputs));
}

export function map(name, inputsList, options) {
  return mapTask(untyped(name), inputsList.map(anyToWire), options);
}

// ---- traces ----

/** Which attempt of its action this is, 1 for the first. */
export function attempt() {
  return hostTrace.attempt();
}

function record(name, args, items) {
  try {
    hostTrace.record(name, args, items);
  } catch (e) {
    // A checkpoint that cannot be written never fails the task: it runs again next time.
    console.error(`sluice: trace ${name} not recorded: ${e && e.payload ? e.payload : e}`);
  }
}

/** `body()`'s result, recorded under `name` and `args` the first time; replayed later. */
export function trace(name, args, body) {
  const argsDoc = encode(anyToWire(args));
  const recorded = hostTrace.replay(name, argsDoc);
  if (recorded && recorded.length) return decode(recorded[0], fromExt);
  const result = body();
  record(name, argsDoc, [encode(anyToWire(result))]);
  return result;
}

/** Yields the items of `makeIter()`, recorded once exhausted; a later attempt replays them in
 * order without calling `makeIter` at all. */
export function* traceIter(name, args, makeIter) {
  const argsDoc = encode(anyToWire(args));
  const recorded = hostTrace.replay(name, argsDoc);
  if (recorded !== undefined && recorded !== null) {
    for (const item of recorded) yield decode(item, fromExt);
    return;
  }
  const items = [];
  for (const value of makeIter()) {
    items.push(encode(anyToWire(value)));
    yield value;
  }
  record(name, argsDoc, items);
}

// ---- logging ----

export const log = Object.freeze(
  Object.fromEntries(["trace", "debug", "info", "warn", "error"].map((level) => [level, (message) => hostLog(level, String(message))])),
);
