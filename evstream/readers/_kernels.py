"""numba decoders: each decodes one block of a file straight into an event array and checks it on the way.

Every decoder has the same shape, ``kernel(data, state, out, width, height) -> (n, code, i)``:

- ``data`` is one block of the file (words or bytes), ``out`` an :data:`~evstream.events.EVENT_DTYPE`
  array with room for every event the block can hold;
- ``state`` (int64 array) carries what a later block needs, so streaming any chunking gives the same events
  as decoding the whole file: ``state[0]`` is the time of the last event written (time order is checked
  across blocks), the rest is the format's decoder state;
- the same pass checks every event: time order (code 1) and the ``width`` x ``height`` sensor (code 2;
  pass :data:`NO_LIMIT` to skip that check; see ``Reader._limits``). ``n`` events were written and are good; on a problem
  (code != 0) ``out[n]`` holds the offending event, ``i`` the index of the input record it came from,
  and ``state[0]`` the time of the event before it.

One fused pass (decode + check) instead of a decode pass and a validation pass over the events.
"""

from __future__ import annotations

import numpy as np

from evstream.jit import nb

NO_LIMIT = 1 << 62  # a width/height that no coordinate reaches


@nb.njit(cache=True, nogil=True)
def decode_dat(words, state, out, width, height):
    """Prophesee DAT: pairs of uint32 (t, word: x bits 0-13, y bits 14-27, p bit 28)."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    n = words.shape[0] // 2
    for i in range(n):
        t = np.int64(words[2 * i])
        w = words[2 * i + 1]
        x = w & 0x3FFF
        y = (w >> 14) & 0x3FFF
        e = out[i]
        e.t = t
        e.x = x
        e.y = y
        e.p = (w >> 28) & 1
        if t < prev or x >= wl or y >= hl:
            state[0] = prev
            return i, 1 if t < prev else 2, i
        prev = t
    state[0] = prev
    return n, 0, -1


@nb.njit(cache=True, nogil=True)
def decode_evt2(words, state, out, width, height):
    """EVT 2.0: 32-bit words; type = w >> 28. CD_OFF=0, CD_ON=1 (t_low 6 bit at 22, x 11 bit at 11,
    y 11 bit at 0), EVT_TIME_HIGH=8 (28 bits). state = [last_t, time_high]."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    t_high = state[1]
    n = 0
    for i in range(words.shape[0]):
        w = words[i]
        typ = w >> 28
        if typ <= 1:
            t = (t_high << 6) | ((w >> 22) & 0x3F)
            x = (w >> 11) & 0x7FF
            y = w & 0x7FF
            e = out[n]
            e.t = t
            e.x = x
            e.y = y
            e.p = typ
            if t < prev or x >= wl or y >= hl:
                state[0] = prev
                state[1] = t_high
                return n, 1 if t < prev else 2, i
            prev = t
            n += 1
        elif typ == 8:
            t_high = np.int64(w & 0x0FFFFFFF)
    state[0] = prev
    state[1] = t_high
    return n, 0, -1


@nb.njit(cache=True, nogil=True)
def decode_evt3(words, state, out, width, height):
    """EVT 3.0: 16-bit words; type = w >> 12.

    state = [last_t, time_high, time_low, y, base_x, base_p, high_epoch]. t = time_high << 12 | time_low,
    where time_high (12 bit) is extended by an epoch counter on its own wrap, so time is monotonic.
    ``out`` needs room for 12 events per word (a VECT_12 word holds up to 12).
    """
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    t_high = state[1]
    t_low = state[2]
    y = state[3]
    bx = state[4]
    bp = state[5]
    epoch = state[6]
    n = 0
    code = 0
    bad = -1
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        typ = w >> 12
        if typ == 0x0:  # EVT_ADDR_Y
            y = w & 0x7FF
        elif typ == 0x2:  # EVT_ADDR_X: one event
            t = (((epoch << 12) | t_high) << 12) | t_low
            x = w & 0x7FF
            e = out[n]
            e.t = t
            e.x = x
            e.y = y
            e.p = (w >> 11) & 1
            if t < prev or x >= wl or y >= hl:
                code = 1 if t < prev else 2
                bad = i
                break
            prev = t
            n += 1
        elif typ == 0x3:  # VECT_BASE_X
            bx = w & 0x7FF
            bp = (w >> 11) & 1
        elif typ == 0x4 or typ == 0x5:  # VECT_12 / VECT_8
            nbits = 12 if typ == 0x4 else 8
            t = (((epoch << 12) | t_high) << 12) | t_low
            for b in range(nbits):
                if (w >> b) & 1:
                    x = bx + b
                    e = out[n]
                    e.t = t
                    e.x = x
                    e.y = y
                    e.p = bp
                    if t < prev or x >= wl or y >= hl:
                        code = 1 if t < prev else 2
                        break
                    prev = t
                    n += 1
            if code != 0:
                bad = i
                break
            bx += nbits
        elif typ == 0x6:  # EVT_TIME_LOW
            t_low = w & 0xFFF
        elif typ == 0x8:  # EVT_TIME_HIGH
            h = w & 0xFFF
            if h < t_high and t_high - h > 2048:  # 24-bit time wrapped
                epoch += 1
            t_high = h
    state[0] = prev
    state[1] = t_high
    state[2] = t_low
    state[3] = y
    state[4] = bx
    state[5] = bp
    state[6] = epoch
    return n, code, bad


@nb.njit(cache=True, nogil=True, inline="always")
def _bswap32(v):
    return ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | ((v >> 24) & 0xFF)


@nb.njit(cache=True, nogil=True)
def decode_aedat2(words_le, state, out, width, height):
    """AEDAT 2.0: big-endian (address, timestamp) int32 pairs, given as little-endian uint32 words.
    state = [last_t, davis]. DVS128: x = (a >> 1) & 0x7F, y = (a >> 8) & 0x7F, p = a & 1, bit 15 marks
    special events (skipped). DAVIS: bit 31 set = APS/IMU (skipped), y = (a >> 22) & 0x1FF,
    x = (a >> 12) & 0x3FF, p = (a >> 11) & 1."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    davis = state[1] != 0
    n = 0
    for i in range(words_le.shape[0] // 2):
        a = _bswap32(np.uint32(words_le[2 * i]))
        t = np.int64(np.int32(_bswap32(np.uint32(words_le[2 * i + 1]))))
        if davis:
            if (a >> 31) & 1:
                continue
            x = (a >> 12) & 0x3FF
            y = (a >> 22) & 0x1FF
            p = (a >> 11) & 1
        else:
            if (a >> 15) & 1:
                continue
            x = (a >> 1) & 0x7F
            y = (a >> 8) & 0x7F
            p = a & 1
        e = out[n]
        e.t = t
        e.x = x
        e.y = y
        e.p = p
        if t < prev or x >= wl or y >= hl:
            state[0] = prev
            return n, 1 if t < prev else 2, i
        prev = t
        n += 1
    state[0] = prev
    return n, 0, -1


@nb.njit(cache=True, nogil=True)
def decode_nmnist(raw, state, out, width, height):
    """N-MNIST 5-byte records; y == 240 marks an overflow (+2**23 µs). state = [last_t, overflow]."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    overflow = state[1]
    n = 0
    for i in range(raw.shape[0] // 5):
        b = 5 * i
        y = raw[b + 1]
        if y == 240:
            overflow += 1 << 23
            continue
        x = raw[b]
        b2 = np.int64(raw[b + 2])
        t = overflow + (((b2 & 0x7F) << 16) | (np.int64(raw[b + 3]) << 8) | np.int64(raw[b + 4]))
        e = out[n]
        e.t = t
        e.x = x
        e.y = y
        e.p = b2 >> 7
        if t < prev or x >= wl or y >= hl:
            state[0] = prev
            state[1] = overflow
            return n, 1 if t < prev else 2, i
        prev = t
        n += 1
    state[0] = prev
    state[1] = overflow
    return n, 0, -1


@nb.njit(cache=True, nogil=True)
def convert_dv(words, state, out, start, width, height):
    """dv-processing's event records (16 bytes: int64 timestamp; int16 x, int16 y, int8 polarity at bytes
    8, 10, 12), given as pairs of uint64 words, into ``out[start:]`` (packed :data:`EVENT_DTYPE`), checked
    like the decoders (``n`` counts from ``start``). state = [last_t]."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    m = words.shape[0] // 2
    for i in range(m):
        t = np.int64(words[2 * i])
        r = words[2 * i + 1]
        x = np.uint16(r & 0xFFFF)
        y = np.uint16((r >> 16) & 0xFFFF)
        e = out[start + i]
        e.t = t
        e.x = x
        e.y = y
        e.p = np.int8((r >> 32) & 0xFF)
        if t < prev or x >= wl or y >= hl:
            state[0] = prev
            return i, 1 if t < prev else 2, i
        prev = t
    state[0] = prev
    return m, 0, -1


@nb.njit(cache=True, nogil=True)
def check_events(t, x, y, state, width, height):
    """The same checks over an existing event array (formats decoded elsewhere): (n_good, code, i)."""
    wl = np.int64(width)
    hl = np.int64(height)
    prev = state[0]
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < prev or x[i] >= wl or y[i] >= hl:
            state[0] = prev
            return i, 1 if ti < prev else 2, i
        prev = ti
    state[0] = prev
    return t.shape[0], 0, -1
