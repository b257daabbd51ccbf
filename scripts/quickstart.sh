#!/usr/bin/env bash
# The first command of the README: installs what is needed, builds sluice and the example guest,
# and runs example tasks on the embedded defaults (SQLite file + local object store under .sluice/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build-guests.sh
cargo build --quiet -p sluice-host --bin sluice
sluice=target/debug/sluice
wasm=target/wasm32-wasip2/release/example_orders.wasm

set -x
"$sluice" describe "$wasm"
"$sluice" run "$wasm" summarize --inputs examples/tasks/orders.json
"$sluice" run "$wasm" discount --project acme \
  --in 'order={"id":"o-9","customer":"ada","amount_cents":5000,"status":"Open"}' --in percent=10
"$sluice" runs list --limit 5

# Files by reference: upload a CSV, shuffle its rows, drop a column, print the result.
files=target/wasm32-wasip2/release/fixture_files.wasm
shuffled=$("$sluice" run "$files" shuffle_rows --in data=@examples/data/people.csv --in seed=7 |
  sed -n 's/.*"o0": "\(.*\)".*/\1/p')
dropped=$("$sluice" run "$files" drop_column --in data="$shuffled" --in column=score |
  sed -n 's/.*"o0": "\(.*\)".*/\1/p')
"$sluice" cat "$dropped"

# The same pipeline written in Python and in JavaScript, and a Python task calling the Rust
# shuffle: all write the same bytes.
release=target/wasm32-wasip2/release
for env in example_csv py_csv js_csv; do
  "$sluice" run "$release/$env.wasm" pipeline --in data=@examples/data/people.csv --in seed=7 --in column=score
done
"$sluice" run --with "$release/example_csv.wasm" "$release/py_csv.wasm" mixed_pipeline \
  --in data=@examples/data/people.csv --in seed=7 --in column=score

# Caching: the second run (only the ignored `note` differs) is answered from the first one's
# entry; `runs show` prints its action tree and events.
durable=target/wasm32-wasip2/release/fixture_durable.wasm
"$sluice" run "$durable" cached_add --in x=1 --in y=2 --in note=first
"$sluice" run "$durable" cached_add --in x=1 --in y=2 --in note=second
"$sluice" runs show "$("$sluice" runs list --limit 1 --json | sed -n 's/.*"id": "\(r[0-9a-z]*\)".*/\1/p' | head -1)"
"$sluice" cache list

# The same host embedded in a Rust program, for two tenants:
cargo run --quiet -p example-embed -- "$wasm" .sluice
