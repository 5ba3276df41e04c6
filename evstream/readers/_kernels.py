"""numba decoders for the formats whose words carry state (EVT 2.0 and EVT 3.0).

Each kernel decodes one block of words into preallocated arrays and returns the number of events written
and the decoder state to carry into the next block, so streaming any chunking gives the same events as
decoding the whole file.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def decode_evt2(words, t_high, out_t, out_x, out_y, out_p):
    """EVT 2.0: 32-bit words; type = w >> 28. CD_OFF=0, CD_ON=1 (t_low 6 bit at 22, x 11 bit at 11,
    y 11 bit at 0), EVT_TIME_HIGH=8 (28 bits). Returns (n_events, t_high)."""
    n = 0
    for i in range(words.shape[0]):
        w = words[i]
        typ = w >> 28
        if typ == 0 or typ == 1:
            out_t[n] = (t_high << 6) | ((w >> 22) & 0x3F)
            out_x[n] = (w >> 11) & 0x7FF
            out_y[n] = w & 0x7FF
            out_p[n] = typ
            n += 1
        elif typ == 8:
            t_high = np.int64(w & 0x0FFFFFFF)
    return n, t_high


@nb.njit(cache=True, nogil=True)
def decode_evt3(words, state, out_t, out_x, out_y, out_p):
    """EVT 3.0: 16-bit words; type = w >> 12.

    state (int64[6]): [time_high, time_low, y, base_x, base_p, high_epoch]. t = time_high << 12 | time_low,
    where time_high (12 bit) is extended by an epoch counter on its own wrap, so time is monotonic.
    Returns n_events; ``state`` is updated in place.
    """
    t_high = state[0]
    t_low = state[1]
    y = state[2]
    bx = state[3]
    bp = state[4]
    epoch = state[5]
    n = 0
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        typ = w >> 12
        if typ == 0x0:  # EVT_ADDR_Y
            y = w & 0x7FF
        elif typ == 0x2:  # EVT_ADDR_X: one event
            out_t[n] = (((epoch << 12) | t_high) << 12) | t_low
            out_x[n] = w & 0x7FF
            out_y[n] = y
            out_p[n] = (w >> 11) & 1
            n += 1
        elif typ == 0x3:  # VECT_BASE_X
            bx = w & 0x7FF
            bp = (w >> 11) & 1
        elif typ == 0x4 or typ == 0x5:  # VECT_12 / VECT_8
            nbits = 12 if typ == 0x4 else 8
            t = (((epoch << 12) | t_high) << 12) | t_low
            for b in range(nbits):
                if (w >> b) & 1:
                    out_t[n] = t
                    out_x[n] = bx + b
                    out_y[n] = y
                    out_p[n] = bp
                    n += 1
            bx += nbits
        elif typ == 0x6:  # EVT_TIME_LOW
            t_low = w & 0xFFF
        elif typ == 0x8:  # EVT_TIME_HIGH
            h = w & 0xFFF
            if h < t_high and t_high - h > 2048:  # 24-bit time wrapped
                epoch += 1
            t_high = h
    state[0] = t_high
    state[1] = t_low
    state[2] = y
    state[3] = bx
    state[4] = bp
    state[5] = epoch
    return n


@nb.njit(cache=True, nogil=True)
def first_bad(t, x, y, width, height, last_t):
    """First event that breaks time order (code 1) or lies outside the sensor (code 2): (index, code),
    or (-1, 0). ``width``/``height`` of 0 skip the sensor check. One pass, no temporaries."""
    prev = last_t
    check = width > 0 and height > 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < prev:
            return i, 1
        if check and (x[i] >= width or y[i] >= height):
            return i, 2
        prev = ti
    return -1, 0


@nb.njit(cache=True, nogil=True)
def decode_dat(words, out_t, out_x, out_y, out_p):
    """Prophesee DAT: pairs of uint32 (t, word: x bits 0-13, y bits 14-27, p bit 28)."""
    n = words.shape[0] // 2
    for i in range(n):
        w = words[2 * i + 1]
        out_t[i] = words[2 * i]
        out_x[i] = w & 0x3FFF
        out_y[i] = (w >> 14) & 0x3FFF
        out_p[i] = (w >> 28) & 1
    return n


@nb.njit(cache=True, nogil=True)
def _bswap32(v):
    return ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | ((v >> 24) & 0xFF)


@nb.njit(cache=True, nogil=True)
def decode_aedat2(words_le, davis, out_t, out_x, out_y, out_p):
    """AEDAT 2.0: big-endian (address, timestamp) int32 pairs, given as little-endian uint32 words.
    DVS128: x = (a >> 1) & 0x7F, y = (a >> 8) & 0x7F, p = a & 1, bit 15 marks special events (skipped).
    DAVIS: bit 31 set = APS/IMU (skipped), y = (a >> 22) & 0x1FF, x = (a >> 12) & 0x3FF, p = (a >> 11) & 1."""
    n = 0
    for i in range(words_le.shape[0] // 2):
        a = _bswap32(np.uint32(words_le[2 * i]))
        ts = np.int32(_bswap32(np.uint32(words_le[2 * i + 1])))
        if davis:
            if (a >> 31) & 1:
                continue
            out_x[n] = (a >> 12) & 0x3FF
            out_y[n] = (a >> 22) & 0x1FF
            out_p[n] = (a >> 11) & 1
        else:
            if (a >> 15) & 1:
                continue
            out_x[n] = (a >> 1) & 0x7F
            out_y[n] = (a >> 8) & 0x7F
            out_p[n] = a & 1
        out_t[n] = ts
        n += 1
    return n


@nb.njit(cache=True, nogil=True)
def decode_nmnist(raw, overflow, out_t, out_x, out_y, out_p):
    """N-MNIST 5-byte records; y == 240 marks an overflow (+2**23 µs). Returns (n, overflow)."""
    n = 0
    for i in range(raw.shape[0] // 5):
        b = 5 * i
        if raw[b + 1] == 240:
            overflow += 1 << 23
            continue
        out_x[n] = raw[b]
        out_y[n] = raw[b + 1]
        out_p[n] = raw[b + 2] >> 7
        out_t[n] = overflow + ((np.int64(raw[b + 2]) & 0x7F) << 16 | np.int64(raw[b + 3]) << 8 | raw[b + 4])
        n += 1
    return n, overflow
