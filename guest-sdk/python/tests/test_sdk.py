"""The parts of the Python SDK that run without the host: the MessagePack codec, descriptor
tables from annotations, and typed conversion. (Everything that talks to the host is tested
end to end by tests/e2e/languages*.rs on real components.)

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import dataclasses
import datetime as dt
import enum
import os
import sys
import unittest
from typing import Optional, Union

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sluice import DataFrame, Dir, File, task  # noqa: E402
from sluice import _msgpack, _types  # noqa: E402


class Color(enum.Enum):
    Red = 1
    Green = 2


@dataclasses.dataclass
class Person:
    name: str
    age: int
    email: Optional[str]


class MsgpackTest(unittest.TestCase):
    def test_values_round_trip_with_sorted_keys_and_shortest_ints(self):
        when = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc)
        value = {"b": [1, -1, 300, -300, 1 << 40, -(1 << 40)], "a": 2.5, "t": when,
                 "d": dt.timedelta(seconds=-1.5), "n": None, "x": b"\x00\xff", "s": "héllo"}
        encoded = _msgpack.encode(value)
        self.assertEqual(_msgpack.decode(encoded), value)
        self.assertEqual(encoded[1:3], b"\xa1a", "keys are written sorted")
        self.assertEqual(_msgpack.encode(5), b"\x05")
        self.assertEqual(_msgpack.encode(-200), b"\xd1\xff\x38")

    def test_timestamps_use_the_hosts_layouts(self):
        utc = dt.timezone.utc
        self.assertEqual(_msgpack.encode(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=utc)), b"\xd6\xff\x00\x00\x00\x01")
        with self.assertRaisesRegex(_msgpack.MsgpackError, "no time zone"):
            _msgpack.encode(dt.datetime(2024, 1, 1))

    def test_bad_documents_are_refused(self):
        for bad, message in [(b"\x92\x01", "ends in the middle"), (b"\x01\x02", "1 bytes left"),
                             (b"\xc1", "starts no MessagePack value"), (b"\x81\x01\x02", "map keys must be strings")]:
            with self.assertRaisesRegex(_msgpack.MsgpackError, message):
                _msgpack.decode(bad)


class DescriptorTest(unittest.TestCase):
    def table(self, ann):
        t = _types.TypeTable()
        root = t.of(ann, "x")
        return t.nodes, root

    def test_annotations_map_like_the_rust_sdk(self):
        nodes, root = self.table(list[Person])
        self.assertEqual(nodes[root], ("list", root - 1))
        self.assertEqual(nodes[root - 1][0], "record")
        self.assertEqual([f for f, _ in nodes[root - 1][1]], ["name", "age", "email"])
        nodes, root = self.table(Optional[Union[int, str]])
        self.assertEqual(nodes[root][0], "optional")
        self.assertEqual(nodes[nodes[root][1]][0], "union")
        self.assertEqual(self.table(Color)[0], [("enum", ["Red", "Green"])])
        self.assertEqual(self.table(File["csv"])[0], [("file", "csv")])
        self.assertEqual(self.table(DataFrame)[0], [("dataframe", "parquet", [])])
        self.assertEqual(self.table(Dir)[0], [("dir",)])
        self.assertEqual(self.table(dict[str, float])[0], [("float",), ("map", 0)])

    def test_what_cannot_be_described_names_where(self):
        with self.assertRaisesRegex(_types.DescribeError, r"x: a dict needs str keys"):
            self.table(dict[int, int])
        with self.assertRaisesRegex(_types.DescribeError, r"x: sluice cannot describe set"):
            self.table(set)

    def test_tasks_describe_their_inputs_and_outputs_and_stay_plain_functions(self):
        @task(cache="auto", retries=2, cache_max_age="30d", name="t_pair")
        def pair(a: int, b: Optional[str]) -> tuple[int, str]:
            return a, b or ""

        nodes, inputs, outputs = pair.table
        self.assertEqual([n for n, _ in inputs], ["a", "b"])
        self.assertEqual([n for n, _ in outputs], ["o0", "o1"])
        self.assertEqual(pair.settings.cache_max_age_ms, 30 * 86_400_000)
        self.assertEqual(pair(1, None), (1, ""))
        doc = pair.run_document(_msgpack.encode({"a": 3, "b": "x"}))
        self.assertEqual(_msgpack.decode(doc), {"o0": 3, "o1": "x"})

    def test_bad_settings_are_refused_at_declaration(self):
        with self.assertRaisesRegex(TypeError, "unknown setting colour"):
            task(colour="red")(lambda: None)
        with self.assertRaisesRegex(_types.DescribeError, "input x needs a type annotation"):
            @task
            def untyped(x) -> int:
                return 1

    def test_values_convert_by_their_annotation(self):
        raw = {"name": "ann", "age": 3, "email": None}
        person = _types.from_wire(Person, raw, "p")
        self.assertEqual(person, Person("ann", 3, None))
        self.assertEqual(_types.to_wire(Person, person, "p"), raw)
        self.assertEqual(_types.to_wire(Color, Color.Green, "c"), "Green")
        self.assertIs(_types.from_wire(Color, "Red", "c"), Color.Red)
        self.assertEqual(_types.from_wire(Union[int, str], "7", "u"), "7")
        self.assertEqual(_types.to_wire(float, 2, "f"), 2.0)
        self.assertIsInstance(_types.to_wire(float, 2, "f"), float)


if __name__ == "__main__":
    unittest.main()
