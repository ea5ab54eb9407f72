"""The scalar columns encoder (tblog/_columns.py) writes the bytes protobuf
would: every record parses to the message built with protobuf's own
constructor, for steps of every varint width (negative ones too), values
past float32's range, NaN, several styles and both dictionary forms."""

import random

import numpy as np
import pytest

from tblog import _columns
from tblog.v1 import tblog_pb2 as pb


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
        encoded = _columns.scalar_records(points, TAGS, stream_tags)
        expected = _reference(points, TAGS, stream_tags)
        assert len(encoded) == len(expected)
        for got, want in zip(encoded, expected):
            # Same bytes once protobuf has parsed them (it writes fields in
            # number order; the encoder appends the packed columns last).
            assert pb.Record.FromString(got).SerializeToString() == want.SerializeToString()
            assert len(got) == want.ByteSize()


def test_steps_outside_int64_raise_overflow_error():
    with pytest.raises(OverflowError):
        _columns.scalar_records([(0, 1 << 63, 1.0, 0.0)], TAGS, True)


def test_varints_of_every_width():
    numbers = [0, 1, 127, 128, 300, 1 << 14, (1 << 21) - 1, 1 << 49, (1 << 63) - 1, -1, -300]
    columns = pb.ScalarColumns(steps=numbers).SerializeToString()
    packed = _columns.varints(np.array(numbers, np.int64))
    assert columns == b"\x1a" + bytes([len(packed)]) + packed  # field 3's key, its length
