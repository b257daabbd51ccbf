// The JavaScript SDK's MessagePack codec, run in Node (everything that talks to the host is
// tested end to end by tests/e2e/languages*.rs on real components).
//
//   node --test guest-sdk/js/test/

import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, encode, Duration, F64, MsgpackError } from "../src/msgpack.js";

test("values round-trip with sorted keys and shortest ints", () => {
  const value = {
    b: [1, -1, 300, -300, 2 ** 40, -(2 ** 40)],
    a: new F64(2.5),
    t: new Date(Date.UTC(2024, 4, 1, 12, 0, 0, 250)),
    d: new Duration(-2, 500_000_000),
    n: null,
    x: new Uint8Array([0, 255]),
    s: "héllo",
    big: 2n ** 62n,
  };
  const bytes = encode(value);
  assert.deepEqual(Array.from(bytes.slice(1, 3)), [0xa1, 0x61], "keys are written sorted");
  const back = decode(bytes);
  assert.equal(back.a, 2.5);
  assert.deepEqual(back.b, value.b);
  assert.equal(back.t.getTime(), value.t.getTime());
  assert.deepEqual(back.d, value.d);
  assert.equal(back.big, 2n ** 62n);
  assert.deepEqual(Array.from(back.x), [0, 255]);
  assert.deepEqual(Array.from(encode(-200)), [0xd1, 0xff, 0x38]);
  // A whole number is an int unless the declared type wrapped it as a float.
  assert.deepEqual(Array.from(encode(2)), [0x02]);
  assert.equal(encode(new F64(2))[0], 0xcb);
});

test("a __proto__ key stays a plain key", () => {
  const back = decode(new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode("__proto__"), 0x01]));
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.equal(Object.keys(back)[0], "__proto__");
});

test("bad documents are refused", () => {
  for (const [bad, message] of [
    [[0x92, 0x01], /ends in the middle/],
    [[0x01, 0x02], /1 bytes left/],
    [[0xc1], /starts no MessagePack value/],
    [[0x81, 0x01, 0x02], /map keys must be strings/],
  ]) {
    assert.throws(() => decode(new Uint8Array(bad)), (e) => e instanceof MsgpackError && message.test(e.message));
  }
});
