"""A small GIF decoder for the tests (no Pillow here): the frames of an
animated GIF as RGB arrays, with each frame's delay and the loop count. It
reads what GIF89a allows, independently of the daemon's encoder: global or
local colour tables, extensions skipped unless known, LZW with clear codes
and the deferred code-width increase."""

import struct

import numpy as np


def _sub_blocks(data, pos):
    out = bytearray()
    while True:
        size = data[pos]
        pos += 1
        if size == 0:
            return bytes(out), pos
        out += data[pos:pos + size]
        pos += size


def _lzw_decode(data, min_code_size, pixel_count):
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    bits = int.from_bytes(data, "little")
    total_bits = len(data) * 8
    pos = 0
    size = min_code_size + 1
    table = [bytes([i]) for i in range(clear)] + [b"", b""]
    out = bytearray()
    prev = None
    while pos + size <= total_bits:
        code = (bits >> pos) & ((1 << size) - 1)
        pos += size
        if code == clear:
            size = min_code_size + 1
            table = table[:end + 1]
            prev = None
            continue
        if code == end:
            break
        if prev is None:
            entry = table[code]
        elif code < len(table):
            entry = table[code]
            table.append(prev + entry[:1])
        elif code == len(table):
            entry = prev + prev[:1]
            table.append(entry)
        else:
            raise ValueError(f"bad LZW code {code} (table has {len(table)})")
        out += entry
        prev = entry
        if len(table) == (1 << size) and size < 12:
            size += 1
    if len(out) < pixel_count:
        raise ValueError(f"LZW data holds {len(out)} pixels, the frame {pixel_count}")
    return np.frombuffer(bytes(out[:pixel_count]), dtype=np.uint8)


def decode(data):
    """{'width', 'height', 'loop', 'frames': [(rgb [H, W, 3], delay_cs), ...]}."""
    if data[:6] != b"GIF89a":
        raise ValueError("not a GIF89a")
    width, height, packed = struct.unpack("<HHB", data[6:11])
    pos = 13
    global_table = None
    if packed & 0x80:
        n = 2 << (packed & 7)
        global_table = np.frombuffer(data[pos:pos + 3 * n], np.uint8).reshape(n, 3)
        pos += 3 * n
    result = {"width": width, "height": height, "loop": None, "frames": []}
    delay = 0
    while True:
        kind = data[pos]
        pos += 1
        if kind == 0x3B:
            return result
        if kind == 0x21:
            label = data[pos]
            block, pos = _sub_blocks(data, pos + 1)
            if label == 0xF9:
                delay = struct.unpack("<H", block[1:3])[0]
            elif label == 0xFF and block.startswith(b"NETSCAPE2.0"):
                result["loop"] = struct.unpack("<H", block[-2:])[0]
            continue
        if kind != 0x2C:
            raise ValueError(f"unexpected block 0x{kind:02x} at {pos - 1}")
        left, top, w, h, packed = struct.unpack("<HHHHB", data[pos:pos + 9])
        pos += 9
        table = global_table
        if packed & 0x80:
            n = 2 << (packed & 7)
            table = np.frombuffer(data[pos:pos + 3 * n], np.uint8).reshape(n, 3)
            pos += 3 * n
        min_code_size = data[pos]
        lzw, pos = _sub_blocks(data, pos + 1)
        indices = _lzw_decode(lzw, min_code_size, w * h)
        assert (left, top, w, h) == (0, 0, width, height), "partial frames not expected"
        result["frames"].append((table[indices].reshape(h, w, 3), delay))
