"""Scalar points as serialized tblog.v1.Record{scalars: ScalarColumns}
messages, encoded column by column without building protobuf objects.

The sender thread turns the points the training threads buffered (a flat
list: global tag index, step, value, wall_time, per point; FIELDS) into these
records. Building a
ScalarColumns message from Python lists and serializing it costs about
0.3 us a point with protobuf's C++ implementation (measured: 2.7 ms for
10,000 points, on the path of every flush()); here each column is converted
by one C loop (struct, array, numpy) and the packed fields are written as bytes, about
ten times less. Fields may come in any order on the wire: the small fields
(tags, style, stream_tag_ids) are serialized by protobuf, the packed columns
are appended after them. The bytes parse to the same message as
pb.Record(scalars=pb.ScalarColumns(...)) (tests/test_columns.py).

Pure functions (a cache of struct formats aside, safe under the GIL):
callable from any thread.
"""

import struct
from array import array

import numpy as np

from tblog.v1 import tblog_pb2 as pb


# A buffered point is FIELDS consecutive entries of one flat list: global tag
# index, step, value, wall_time. add_scalar appends them with one
# `points += (...)` (atomic under the GIL, as list.append is): no tuple per
# point is kept, so the sender converts each column with one C loop over a
# slice (points[1::FIELDS]), with no zip() and no 10,000 tuples to free.
FIELDS = 4
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _number(message, name):
    return message.DESCRIPTOR.fields_by_name[name].number


def _key(number):
    """The tag of length-delimited field `number`, a one-byte varint for the
    field numbers used here."""
    return bytes([number << 3 | 2])


_SCALARS = _key(_number(pb.Record, "scalars"))
_TAG_INDEX = _key(_number(pb.ScalarColumns, "tag_index"))
_STEPS = _key(_number(pb.ScalarColumns, "steps"))
_VALUES = _key(_number(pb.ScalarColumns, "values"))
_WALL_TIMES = _key(_number(pb.ScalarColumns, "wall_times"))


def varint(value):
    """The protobuf varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key, payload):
    return b"".join((key, varint(len(payload)), payload))


def varints(values):
    """The protobuf varints of an int64 numpy array, concatenated (a packed
    repeated int64/uint32 field's payload): negative numbers take ten bytes,
    as protobuf writes them. Byte k of every number is computed for all
    numbers at once into an n x width table; the bytes past each number's
    own width are then left out (all at once too)."""
    unsigned = values.view(np.uint64)
    count = len(unsigned)
    if not count:
        return b""
    top = int(unsigned.max())
    if top < 0x80:  # the usual tag index, small steps: one byte each
        return unsigned.astype(np.uint8).tobytes()
    width = (top.bit_length() + 6) // 7
    table = np.empty((count, width), np.uint8)
    rest = unsigned
    for k in range(width - 1):
        low = rest.astype(np.uint8)  # the low 8 bits; the 8th is replaced below
        rest = rest >> np.uint64(7)
        np.bitwise_and(low, 0x7F, out=low)
        np.bitwise_or(low, (rest != 0).view(np.uint8) << 7, out=table[:, k])
    table[:, width - 1] = rest
    if int(unsigned.min()) >> (7 * (width - 1)):  # every number has all `width` bytes
        return table.tobytes()
    keep = np.empty((count, width), bool)
    keep[:, 0] = True
    for k in range(1, width):
        np.greater_equal(unsigned, np.uint64(1 << (7 * k)), out=keep[:, k])
    return table[keep].tobytes()


# struct.Struct of "<{count}{code}" by (code, count): packs a list of Python
# numbers in one C loop, faster than array.array's constructor (measured
# 75-110 us against 150-160 us for 10,000 floats). Few distinct counts occur
# (the points buffered per send); the cache is cleared past _MAX_STRUCTS.
_STRUCTS = {}
_MAX_STRUCTS = 64


def _packed(code, numbers):
    key = (code, len(numbers))
    packer = _STRUCTS.get(key)
    if packer is None:
        if len(_STRUCTS) >= _MAX_STRUCTS:
            _STRUCTS.clear()
        packer = _STRUCTS[key] = struct.Struct(f"<{len(numbers)}{code}")
    return packer.pack(*numbers)


def _columns_of(steps, values, wall_times):
    """(steps int64, values float32, wall times float64) numpy arrays of the
    lists. struct refuses what array.array accepts (a value past float32's
    range, which protobuf stores as inf as the C cast does; a step outside
    int64, for which array.array raises the OverflowError callers expect):
    those take array.array's path."""
    try:
        return (np.frombuffer(_packed("q", steps), "<i8"),
                np.frombuffer(_packed("f", values), "<f4"),
                np.frombuffer(_packed("d", wall_times), "<f8"))
    except (struct.error, OverflowError):
        # Packed fixed-width fields are little-endian (a no-op here on x86 and ARM).
        return (np.frombuffer(array("q", steps), np.int64),
                np.frombuffer(array("f", values), np.float32).astype("<f4", copy=False),
                np.frombuffer(array("d", wall_times), np.float64).astype("<f8", copy=False))


def scalar_records(points, tags, stream_tags):
    """Serialized Records (each a Record.scalars field's bytes) for `points`,
    a flat list of FIELDS numbers per point: global tag index, step, value,
    wall_time. With `stream_tags` the indices are the stream dictionary's
    ids (defined by this batch or earlier messages of the stream); otherwise
    the dictionary is the writer's whole tag list up to the highest index
    used, so indices need no remapping either. One record per scalar style
    present (almost always one).

    Steps must fit int64 (OverflowError otherwise); values are rounded to
    float32 as protobuf's float field does (inf past its range)."""
    index = points[0::FIELDS]
    steps, values, wall_times = _columns_of(points[1::FIELDS], points[2::FIELDS],
                                            points[3::FIELDS])
    if index.count(index[0]) == len(index):  # one tag (the usual flood)
        used = {index[0]}
        index = np.full(len(index), index[0], np.int64)
    else:
        used = set(index)
        index = np.frombuffer(array("q", index), np.int64)
    styles = {tags[i][2] for i in used}
    if stream_tags:
        dictionary = {"stream_tag_ids": True}
    else:
        top = max(used) + 1
        dictionary = {"tags": [pb.ColumnTag(tag=tag, subrun=subrun)
                               for tag, subrun, _ in tags[:top]]}
    if len(styles) == 1:
        groups = [(styles.pop(), slice(None))]
    else:
        style_of = np.array([style for _, _, style in tags], np.int64)[index]
        groups = [(style, style_of == style) for style in sorted(styles)]
    out = []
    for style, chosen in groups:
        columns = b"".join((
            pb.ScalarColumns(style=style, **dictionary).SerializeToString(),
            _field(_TAG_INDEX, varints(index[chosen])),
            _field(_STEPS, varints(steps[chosen])),
            _field(_VALUES, values[chosen].tobytes()),
            _field(_WALL_TIMES, wall_times[chosen].tobytes())))
        out.append(_field(_SCALARS, columns))
    return out


def checked_records(points, tags, stream_tags):
    """scalar_records, and None or the error for the points whose step does
    not fit int64 (an int global_step is not checked on add_scalar's hot
    path): those are left out, the others encoded."""
    try:
        return scalar_records(points, tags, stream_tags), None
    except OverflowError:
        good, bad = [], []
        for start in range(0, len(points), FIELDS):
            point = points[start:start + FIELDS]
            (good if _INT64_MIN <= point[1] <= _INT64_MAX else bad).extend(point)
        error = (f"tblog: add_scalar {tags[bad[0]][0]!r}: step {bad[1]} is outside int64; "
                 f"{len(bad) // FIELDS} point(s) dropped")
        return (scalar_records(good, tags, stream_tags) if good else []), error


def chunked(points, tags, stream_tags, chunk_points):
    """checked_records of each run of at most `chunk_points` points of
    `points`, in order: (records, None or the error)."""
    step = chunk_points * FIELDS
    for start in range(0, len(points), step):
        yield checked_records(points[start:start + step], tags, stream_tags)


class Encoded:
    """Buffered points encoded ahead of the sender, on the thread that
    buffered them (Stream.flush): there they are in the core's cache, and
    encoding 10,000 took about half the time it takes the sender's thread
    (0.6 ms against 1.2 ms, measured). `chunks` is chunked()'s output; the
    sender uses it while its dictionary form is still `stream_tags`, and
    otherwise encodes `points` again."""

    __slots__ = ("points", "stream_tags", "chunks")

    def __init__(self, points, tags, stream_tags, chunk_points):
        self.points = points
        self.stream_tags = stream_tags
        self.chunks = list(chunked(points, tags, stream_tags, chunk_points))
