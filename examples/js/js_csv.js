// The seed's CSV pipeline in JavaScript: shuffle the rows of a CSV file, then drop a column.
// The Rust twin is examples/csv; for the same input, seed and column both write the same bytes.
//
//   scripts/build-js.sh examples/js/js_csv.js -o js_csv.wasm

import { task, t, File, UserError } from "sluice";

const csv = t.file("csv");
const MASK = (1n << 64n) - 1n;

function parse(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  return lines.length ? [lines[0].split(","), lines.slice(1).map((l) => l.split(","))] : [[], []];
}

function write(name, header, rows) {
  const out = File.create(name, "csv");
  out.write([header, ...rows].map((r) => r.join(",") + "\n").join(""));
  return out.finish();
}

export const shuffle_rows = task(
  { doc: "Shuffles the rows of a CSV file (the header stays first), the same way for the same seed.", inputs: { data: csv, seed: t.int }, output: csv },
  (data, seed) => {
    const [header, rows] = parse(data.text());
    // Fisher-Yates driven by a 64-bit LCG, so every language gets the same order.
    let state = (BigInt(seed) & MASK) ^ 0x9e3779b97f4a7c15n;
    for (let i = rows.length - 1; i > 0; i--) {
      state = (state * 6364136223846793005n + 1442695040888963407n) & MASK;
      const j = Number((state >> 33n) % BigInt(i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    return write("shuffled.csv", header, rows);
  },
);

export const drop_column = task({ doc: "Drops one column of a CSV file.", inputs: { data: csv, column: t.string }, output: csv }, (data, column) => {
  const [header, rows] = parse(data.text());
  const index = header.indexOf(column);
  if (index < 0) throw new UserError(`column "${column}" not in the data (columns: ${header.join(", ")})`);
  const keep = (row) => row.filter((_, i) => i !== index);
  return write("dropped.csv", keep(header), rows.map(keep));
});

export const pipeline = task(
  { doc: "Shuffles, then drops a column: two child actions.", inputs: { data: csv, seed: t.int, column: t.string }, output: csv },
  (data, seed, column) => drop_column.call(shuffle_rows.call(data, seed), column),
);
