"""The scalar columns encoder (tblog/_columns.py) writes the bytes protobuf
would: every record parses to the message built with protobuf's own
constructor, for steps of every varint width (negative ones too), values
past float32's range, NaN, several styles and both dictionary forms."""

import random

import numpy as np
import pytest

from tblog import _columns
from tblog.v1 import tblog_pb2 as pb


def _flat(points):
    """Points as the buffer holds them (tblog/_columns.py FIELDS)."""
    return [x for point in points for x in point]


def _reference(points, tags, stream_tags):
    """What the encoder replaces: ScalarColumns built by protobuf."""
    styles = sorted({tags[p[0]][2] for p in points})
    dictionary = ({"stream_tag_ids": True} if stream_tags else
                  {"tags": [pb.ColumnTag(tag=t, subrun=s)
                            for t, s, _ in tags[:max(p[0] for p in points) + 1]]})
    out = []
    for style in styles:
        chosen = [p for p in points if tags[p[0]][2] == style]
        out.append(pb.Record(scalars=pb.ScalarColumns(
            tag_index=[p[0] for p in chosen], steps=[p[1] for p in chosen],
            values=[p[2] for p in chosen], wall_times=[p[3] for p in chosen], style=style,
            **dictionary)))
    return out


TAGS = ([("loss", "", pb.SCALAR_STYLE_SIMPLE_VALUE), ("acc", "train", pb.SCALAR_STYLE_TENSOR)] +
        [(f"t/{i}", "", pb.SCALAR_STYLE_SIMPLE_VALUE) for i in range(300)])


@pytest.mark.parametrize("stream_tags", [True, False])
def test_records_parse_to_what_protobuf_builds(stream_tags):
    rng = random.Random(13)
    steps = [0, 1, 127, 128, 16383, 16384, 1 << 35, (1 << 63) - 1, -1, -(1 << 63)]
    values = [0.5, -0.0, 1e300, -1e300, 1e-50, float("inf"), float("nan"), 3.4028235e38]
    for _ in range(50):
        points = [(rng.choice([0, 1, rng.randrange(len(TAGS))]),
                   rng.choice(steps + [rng.randrange(-10, 1 << 20)]),
                   rng.choice(values + [rng.random()]), 1.7e9 + rng.random())
                  for _ in range(rng.randint(1, 500))]
        encoded = _columns.scalar_records(_flat(points), TAGS, stream_tags)
        expected = _reference(points, TAGS, stream_tags)
        assert len(encoded) == len(expected)
        for got, want in zip(encoded, expected):
            # Same bytes once protobuf has parsed them (it writes fields in
            # number order; the encoder appends the packed columns last).
            assert pb.Record.FromString(got).SerializeToString() == want.SerializeToString()
            assert len(got) == want.ByteSize()


def test_steps_outside_int64_raise_overflow_error():
    with pytest.raises(OverflowError):
        _columns.scalar_records([0, 1 << 63, 1.0, 0.0], TAGS, True)


def test_points_with_steps_outside_int64_are_left_out_and_named():
    points = [(0, 5, 1.0, 1.0), (0, 1 << 63, 2.0, 2.0), (0, -(1 << 64), 3.0, 3.0),
              (0, 6, 4.0, 4.0)]
    records, error = _columns.checked_records(_flat(points), TAGS, True)
    assert error == ("tblog: add_scalar 'loss': step 9223372036854775808 is outside int64; "
                     "2 point(s) dropped")
    assert records == _columns.scalar_records(_flat([points[0], points[3]]), TAGS, True)
    assert _columns.checked_records(_flat(points[:1]), TAGS, True) == (
        _columns.scalar_records(_flat(points[:1]), TAGS, True), None)


def test_values_past_float32_and_int_wall_times_take_the_fallback_path():
    # struct refuses 1e300 as a float32 and the array path stores inf, as
    # protobuf does; an int wall time is a float64 like any other.
    points = [(0, 1, 1e300, 5), (0, 2, -1e300, 1.5)]
    (got,) = _columns.scalar_records(_flat(points), TAGS, True)
    (want,) = _reference(points, TAGS, True)
    assert pb.Record.FromString(got).SerializeToString() == want.SerializeToString()


def test_varints_of_every_width():
    numbers = [0, 1, 127, 128, 300, 1 << 14, (1 << 21) - 1, 1 << 49, (1 << 63) - 1, -1, -300]
    columns = pb.ScalarColumns(steps=numbers).SerializeToString()
    packed = _columns.varints(np.array(numbers, np.int64))
    assert columns == b"\x1a" + bytes([len(packed)]) + packed  # field 3's key, its length


@pytest.mark.parametrize("numbers", [
    list(range(128, 16384)),                  # all the same width (no byte left out)
    list(range(0, 300)),                      # widths 1 and 2
    [1 << 62, (1 << 63) - 1, 5],              # 9 bytes and 1
    [-1] * 3 + [0],                           # 10 bytes and 1
    [],
])
def test_varints_match_protobuf(numbers):
    expected = b"".join(pb.ScalarColumns(steps=[n]).SerializeToString()[1:][1:]
                        for n in numbers)  # each one's key and length byte dropped
    assert _columns.varints(np.array(numbers, np.int64)) == expected
