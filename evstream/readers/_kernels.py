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
