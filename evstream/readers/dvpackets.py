"""AEDAT 4.0 framing, shared by ``.aedat4`` files and DV network event streams, decoded without trusting it.

Both carry an ``IOHeader`` (a FlatBuffer: compression, data-table position, an XML description of the
streams) and then packets of ``int32 stream id, int32 size`` followed by ``size`` bytes: a FlatBuffer,
compressed as the header says (LZ4 frames here; ZSTD files go through the ``aedat`` decoder). An event
packet (identifier ``EVTS``) holds a vector of 16-byte records: int64 timestamp (µs), int16 x, int16 y,
uint8 polarity, 3 bytes padding.

Files start with ``#!AER-DAT4.0\\r\\n`` and an int32 header size; network streams start with the int32 header
size. Every size is checked against the bytes that are really there (the file length, or the limits below
for a network stream) before anything is allocated, and the LZ4 decoder checks every offset and length,
so damaged or hostile input ends in an error code within one pass -- it cannot loop or over-allocate.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from evstream.jit import nb

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = {0: "NONE", 1: "LZ4", 2: "LZ4_HIGH", 3: "ZSTD", 4: "ZSTD_HIGH"}
MAX_HEADER = 16 << 20  # largest IOHeader accepted (DV writes a few KiB)
MAX_PACKET = 1 << 27  # largest packet, compressed or decompressed (8 M events); DV writes a few KiB each
EVTS = 0x53545645  # b"EVTS" as a little-endian uint32

# kernel result codes
OK, BAD_TIME, OUT_OF_SENSOR = 0, 1, 2
NEED_DATA, OUT_FULL, SCRATCH_SMALL, BAD_SIZE, BAD_LZ4, BAD_PACKET, BAD_STREAM = 3, 4, 5, 6, 7, 8, 9
PROBLEMS = {
    BAD_SIZE: "packet size {size} does not fit the {room} bytes left",
    BAD_LZ4: "corrupt LZ4 data in the packet",
    BAD_PACKET: "not a readable event packet",
    SCRATCH_SMALL: f"packet decompresses to more than {MAX_PACKET >> 20} MiB",
    BAD_STREAM: "packet of stream {size}, which the header does not declare",
}


class HeaderProblem(ValueError):
    """The IOHeader is not what it claims; ``str()`` says why in a few words."""


# --- IOHeader ------------------------------------------------------------------------------------------
def _u32(b: bytes, i: int) -> int:
    if i < 0 or i + 4 > len(b):
        raise HeaderProblem(f"offset {i} outside the {len(b)}-byte header")
    return struct.unpack_from("<I", b, i)[0]


def parse_io_header(buf: bytes) -> dict:
    """``{"compression": int, "data_table": int, "streams": {id: {...}}}`` from an IOHeader FlatBuffer
    (without its int32 size). Raises :class:`HeaderProblem`."""
    if len(buf) < 12 or buf[4:8] != b"IOHE":
        raise HeaderProblem("no IOHeader (identifier 'IOHE' missing)")
    table = _u32(buf, 0)
    vt = table - struct.unpack("<i", struct.pack("<I", _u32(buf, table)))[0]
    if vt < 0 or vt + 4 > len(buf):
        raise HeaderProblem("IOHeader table points outside the header")
    vt_size = struct.unpack_from("<H", buf, vt)[0]
    if vt_size < 4 or vt + vt_size > len(buf):
        raise HeaderProblem("IOHeader field table does not fit the header")

    def field(k):  # byte offset of field k in the table, or None when absent
        if 4 + 2 * k + 2 > vt_size:
            return None
        off = struct.unpack_from("<H", buf, vt + 4 + 2 * k)[0]
        return table + off if off else None

    f = field(0)
    compression = struct.unpack("<i", struct.pack("<I", _u32(buf, f)))[0] if f is not None else 0
    f = field(1)
    if f is not None and f + 8 > len(buf):
        raise HeaderProblem("data-table position outside the header")
    data_table = struct.unpack_from("<q", buf, f)[0] if f is not None else -1
    f = field(2)
    xml = ""
    if f is not None:
        s = f + _u32(buf, f)
        n = _u32(buf, s)
        if s + 4 + n > len(buf):
            raise HeaderProblem(f"stream description of {n} bytes does not fit the header")
        xml = buf[s + 4:s + 4 + n].decode("utf-8", "replace")
    if compression not in COMPRESSIONS:
        raise HeaderProblem(f"unknown compression {compression}")
    return {"compression": compression, "data_table": data_table, "streams": parse_streams(xml)}


def parse_streams(xml: str) -> dict[int, dict]:
    """Stream id -> ``{"name", "type", "width", "height", "source"}`` from the header's XML."""
    streams: dict[int, dict] = {}
    if not xml.strip():
        return streams
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise HeaderProblem(f"unreadable stream description ({exc})") from None
    out_info = next((n for n in root.iter("node") if n.get("name") == "outInfo"), None)
    for node in (out_info if out_info is not None else []):
        if node.tag != "node" or not re.fullmatch(r"\d{1,4}", node.get("name", "")):
            continue
        attrs = {a.get("key"): (a.text or "") for a in node.iter("attr")}

        def num(key):
            v = attrs.get(key, "")
            return int(v) if re.fullmatch(r"\d{1,6}", v.strip()) else 0

        streams[int(node.get("name"))] = {
            "name": attrs.get("originalOutputName") or node.get("name"), "type": attrs.get("typeIdentifier", ""),
            "width": num("sizeX"), "height": num("sizeY"), "source": attrs.get("source", "")}
    return streams


def build_io_header(streams_xml: str, compression: int = 0, data_table: int = -1) -> bytes:
    """An IOHeader FlatBuffer laid out as dv-processing lays it out (without the int32 size before it)."""
    text = streams_xml.encode() + b"\0"
    text += b"\0" * (-len(text) % 4)
    vtable = struct.pack("<5H", 10, 20, 4, 12, 8)  # 3 fields: compression@4, dataTablePosition@12, infoNode@8
    head = struct.pack("<I", 24) + b"IOHE" + b"\0" * 6 + vtable
    table = struct.pack("<iiIq", 10, compression, 12, data_table)
    return head + table + struct.pack("<I", len(streams_xml.encode())) + text


def events_xml(width: int, height: int, source: str, stream_id: int = 0, name: str = "events") -> str:
    """The stream description of one uncompressed event stream, as dv-processing writes it."""
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    return (f'<dv version="2.0">\n    <node name="outInfo" path="/outInfo/">\n'
            f'        <node name="{stream_id}" path="/outInfo/{stream_id}/">\n'
            f'            <attr key="compression" type="string">NONE</attr>\n'
            f'            <attr key="originalModuleName" type="string">evstream</attr>\n'
            f'            <attr key="originalOutputName" type="string">{esc(name)}</attr>\n'
            f'            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
            f'            <node name="info" path="/outInfo/{stream_id}/info/">\n'
            f'                <attr key="sizeX" type="int">{int(width)}</attr>\n'
            f'                <attr key="sizeY" type="int">{int(height)}</attr>\n'
            f'                <attr key="source" type="string">{esc(source)}</attr>\n'
            f'            </node>\n        </node>\n    </node>\n</dv>\n')


def event_packet(events: np.ndarray, stream_id: int = 0) -> bytes:
    """One uncompressed event packet (packet header + size-prefixed FlatBuffer), as dv-processing sends it."""
    n = len(events)
    rec = np.zeros(n, np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("pad", "V3")]))
    rec["t"], rec["x"], rec["y"], rec["p"] = events["t"], events["x"], events["y"], events["p"]
    body = (struct.pack("<II", 16, EVTS) + b"\0\0" + struct.pack("<3H", 6, 8, 4)
            + struct.pack("<iII", 6, 4, n) + rec.tobytes())
    return struct.pack("<iiI", stream_id, len(body) + 4, len(body)) + body


# --- numba kernels -------------------------------------------------------------------------------------
@intrinsic
def _load8(typingctx, arr, idx):
    """8 bytes of a uint8 array from any byte ``idx`` as one uint64 (an unaligned load; no bounds check)."""
    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(a.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return types.uint64(arr, idx), codegen


@intrinsic
def _store8(typingctx, arr, idx, val):
    """Store uint64 ``val`` as 8 bytes at any byte ``idx`` of a uint8 array (no bounds check)."""
    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(a.data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@nb.njit(cache=True, nogil=True, inline="always")
def _le32(b, i):
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16) | (np.int64(b[i + 3]) << 24)


@nb.njit(cache=True, nogil=True)
def _lz4_length(src, ip, iend, n):
    """Extend a 4-bit length ``n`` that is 15 with the 255-continued bytes after it; -1 if they run out."""
    while True:
        if ip >= iend:
            return -1, ip
        b = src[ip]
        ip += 1
        n += b
        if b != 255:
            return n, ip


@nb.njit(cache=True, nogil=True)
def _lz4_block(src, ip, iend, dst, op, limit):
    """Decode one LZ4 block ``src[ip:iend]`` to ``dst[op:]``, writing at most up to ``limit`` (the block's
    maximum size) and within ``dst``. Returns (new op, code): 0 ok, BAD_LZ4, SCRATCH_SMALL."""
    cap = dst.shape[0]
    while ip < iend:
        token = np.int64(src[ip])
        ip += 1
        lit = token >> 4
        ml = token & 15
        if lit < 15 and ml < 15 and ip + 18 <= iend and op + 40 <= cap and op + lit + ml + 4 <= limit:
            # the common short sequence: <= 14 literals and a match of <= 18 bytes, copied 8 bytes at a time
            # without loops (reads stay inside this block, writes inside dst)
            _store8(dst, op, _load8(src, ip))
            _store8(dst, op + 8, _load8(src, ip + 8))
            ip += lit
            op += lit
            off = np.int64(src[ip]) | (np.int64(src[ip + 1]) << 8)
            ip += 2
            ml += 4
            if off == 0 or off > op:
                return op, BAD_LZ4
            m = op - off
            if off >= 8:
                _store8(dst, op, _load8(dst, m))
                _store8(dst, op + 8, _load8(dst, m + 8))
                _store8(dst, op + 16, _load8(dst, m + 16))
            else:
                for k in range(ml):
                    dst[op + k] = dst[m + k]
            op += ml
            continue
        if lit == 15:
            lit, ip = _lz4_length(src, ip, iend, lit)
            if lit < 0:
                return op, BAD_LZ4
        if ip + lit > iend or op + lit > limit:
            return op, BAD_LZ4
        if op + lit > cap:
            return op, SCRATCH_SMALL
        if ip + lit + 8 <= src.shape[0] and op + lit + 8 <= cap:  # room to copy 8 bytes at a time
            for k in range(0, lit, 8):
                _store8(dst, op + k, _load8(src, ip + k))
        else:
            for k in range(lit):
                dst[op + k] = src[ip + k]
        ip += lit
        op += lit
        if ip == iend:
            return op, OK  # the last sequence has literals only
        if ip + 2 > iend:
            return op, BAD_LZ4
        off = np.int64(src[ip]) | (np.int64(src[ip + 1]) << 8)
        ip += 2
        if ml == 15:
            ml, ip = _lz4_length(src, ip, iend, ml)
            if ml < 0:
                return op, BAD_LZ4
        ml += 4
        if off == 0 or off > op or op + ml > limit:
            return op, BAD_LZ4
        if op + ml > cap:
            return op, SCRATCH_SMALL
        m = op - off
        if off >= 8 and op + ml + 8 <= cap:
            for k in range(0, ml, 8):  # each 8 bytes come from at least 8 bytes back: already written
                _store8(dst, op + k, _load8(dst, m + k))
        else:
            for k in range(ml):  # forward byte copy: an overlapping match repeats its last ``off`` bytes
                dst[op + k] = dst[m + k]
        op += ml
    return op, BAD_LZ4  # a block must end with a literal-only sequence


@nb.njit(cache=True, nogil=True)
def lz4_frame(src, s, e, dst):
    """Decode the LZ4 frame ``src[s:e]`` (exactly one frame) into ``dst``: (bytes written, code)."""
    if e - s < 7 or _le32(src, s) != 0x184D2204:
        return 0, BAD_LZ4
    flg = np.int64(src[s + 4])
    bd = np.int64(src[s + 5])
    if (flg >> 6) != 1 or (flg & 2) or (bd & 0x8F) or ((bd >> 4) & 7) < 4:
        return 0, BAD_LZ4
    block_ck = 4 * ((flg >> 4) & 1)
    content_ck = 4 * ((flg >> 2) & 1)
    bmax = np.int64(1) << (8 + 2 * ((bd >> 4) & 7))
    ip = s + 7 + 8 * ((flg >> 3) & 1) + 4 * (flg & 1)
    op = 0
    while True:
        if ip + 4 > e:
            return op, BAD_LZ4
        bs = _le32(src, ip)
        ip += 4
        if bs == 0:
            break
        size = bs & 0x7FFFFFFF
        if size > bmax or ip + size + block_ck > e:
            return op, BAD_LZ4
        if bs >> 31:  # stored uncompressed
            if op + size > dst.shape[0]:
                return op, SCRATCH_SMALL
            dst[op:op + size] = src[ip:ip + size]
            op += size
        else:
            op, code = _lz4_block(src, ip, ip + size, dst, op, op + bmax)
            if code != OK:
                return op, code
        ip += size + block_ck
    if ip + content_ck != e:
        return op, BAD_LZ4
    return op, OK


@nb.njit(cache=True, nogil=True)
def _event_vector(b, n):
    """(first record byte, count) of the event vector in the FlatBuffer ``b[:n]``; (-1, 0) if it is not an
    event packet whose vector fits. A size-prefixed buffer (as network streams send it) is accepted too."""
    if n >= 8 and _le32(b, 4) == EVTS:
        base = 0
    elif n >= 12 and _le32(b, 8) == EVTS and _le32(b, 0) == n - 4:
        base = 4
    else:
        return -1, 0
    root = base + _le32(b, base)
    if root + 4 > n:
        return -1, 0
    so = _le32(b, root)
    if so >= 1 << 31:
        so -= 1 << 32
    vt = root - so
    if vt < base or vt + 4 > n:
        return -1, 0
    vt_size = np.int64(b[vt]) | (np.int64(b[vt + 1]) << 8)
    if vt_size < 4 or vt + vt_size > n:
        return -1, 0
    if vt_size < 6:
        return 0, 0  # no elements field: an empty packet
    off = np.int64(b[vt + 4]) | (np.int64(b[vt + 5]) << 8)
    if off == 0:
        return 0, 0
    f = root + off
    if f + 4 > n:
        return -1, 0
    vec = f + _le32(b, f)
    if vec + 4 > n or vec % 4:
        return -1, 0
    count = _le32(b, vec)
    if vec + 4 + 16 * count > n:
        return -1, 0
    return vec + 4, count


@nb.njit(cache=True, nogil=True)
def decode_packets(data, pos, end, stream_id, known, lz4, scratch, state, out, n, width, height):
    """Walk the packets in ``data[pos:end]``, decoding those of ``stream_id`` into ``out[n:]``, checked like
    the other decoders (state = [last_t]). ``known[i]`` is 1 for each stream id the header declares (any
    other id is damage: BAD_STREAM, ``need`` = the id). ``scratch`` is a uint32 array (decompression room).

    Returns (pos, n, code, need): ``pos`` is the start of the packet where it stopped (``end`` when all
    were read), ``n`` the events in ``out``; ``need`` is the byte size of that packet for NEED_DATA
    (it runs past ``data``), its event count for OUT_FULL, its declared size for BAD_SIZE."""
    wl = np.int64(width)
    hl = np.int64(height)
    sb = scratch.view(np.uint8)
    prev = state[0]
    while pos < end:
        if end - pos < 8:
            return pos, n, BAD_SIZE, end - pos
        if pos + 8 > data.shape[0]:
            return pos, n, NEED_DATA, 8
        sid = _le32(data, pos)
        size = _le32(data, pos + 4)
        if size >= 1 << 31:
            size -= 1 << 32
        if size < 0 or size > end - pos - 8:
            return pos, n, BAD_SIZE, size
        if sid >= known.shape[0] or known[sid] == 0:
            return pos, n, BAD_STREAM, sid
        if pos + 8 + size > data.shape[0]:
            return pos, n, NEED_DATA, 8 + size
        if sid != stream_id:
            pos += 8 + size
            continue
        if lz4:
            m, code = lz4_frame(data, pos + 8, pos + 8 + size, sb)
            if code != OK:
                return pos, n, code, size
        else:
            if size > sb.shape[0]:
                return pos, n, SCRATCH_SMALL, size
            sb[:size] = data[pos + 8:pos + 8 + size]
            m = size
        first, count = _event_vector(sb, m)
        if first < 0:
            return pos, n, BAD_PACKET, size
        if n + count > out.shape[0]:
            return pos, n, OUT_FULL, count
        w = first // 4
        for k in range(count):
            t = np.int64(scratch[w]) | (np.int64(scratch[w + 1]) << 32)
            xy = np.int64(scratch[w + 2])
            x = xy & 0xFFFF
            y = xy >> 16
            e = out[n]
            e.t = t
            e.x = x
            e.y = y
            e.p = 1 if (scratch[w + 3] & 0xFF) else 0
            if t < prev or x >= wl or y >= hl or x >= 0x8000 or y >= 0x8000:  # int16 x/y < 0: outside
                state[0] = prev
                return pos, n, BAD_TIME if t < prev else OUT_OF_SENSOR, k
            prev = t
            n += 1
            w += 4
        pos += 8 + size
    state[0] = prev
    return pos, n, OK, 0
