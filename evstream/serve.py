"""Serving a recording as a DV network event stream (``dv.io.NetworkWriter``), so a live stream can be run
and tested on one machine: ``evstream serve FILE --port N`` and, elsewhere, ``open_source("tcp://...")``.

Binds 127.0.0.1 unless told otherwise. By default it waits for the first client before sending, so that
client receives every event of the recording in order.
"""

from __future__ import annotations

import time

from evstream.errors import StreamError
from evstream.sources import FileSource
from evstream.writers import to_dv_store


def serve(path, port: int, host: str = "127.0.0.1", speed: float | None = 1.0, loop: bool = False,
          wait_client_s: float | None = 30.0, linger_s: float = 1.0, log=print) -> int:
    """Stream the recording at ``path``; returns the number of events sent."""
    import dv_processing as dv

    src = FileSource(path, speed=None, loop=loop)
    w, h = src.sensor_size
    stream = dv.io.Stream.EventStream(0, "events", "evstream", (w, h))
    try:
        server = dv.io.NetworkWriter(host, int(port), stream)
    except Exception as exc:
        msg = str(exc).splitlines()[0].split(" [")[0] if str(exc) else type(exc).__name__
        raise StreamError(f"cannot listen ({msg})", where=f"tcp://{host}:{port}") from None
    log(f"serving {path} ({w}x{h}, {src.duration_us / 1e6:.2f} s) on tcp://{host}:{port}")
    if wait_client_s:
        t_end = time.monotonic() + wait_client_s
        while server.getClientCount() == 0:
            if time.monotonic() > t_end:
                raise StreamError(f"no client connected within {wait_client_s:g} s", where=f"tcp://{host}:{port}")
            time.sleep(0.01)
    src.speed = speed
    sent = 0
    try:
        for chunk in src:
            server.writeEvents(to_dv_store(chunk.events))
            sent += len(chunk)
        # let the queue drain before the server goes away
        t_end = time.monotonic() + linger_s
        while server.getQueuedPacketCount() > 0 and time.monotonic() < t_end:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        src.close()
        _retire(server)
    log(f"sent {sent} events")
    return sent


_RETIRED: list = []


def _retire(server) -> None:
    """Keep a finished NetworkWriter alive instead of destroying it: its destructor blocks (holding the
    GIL) while a client is connected, and a client only notices the end once the server is gone. The
    ``evstream serve`` command leaves with ``os._exit``; a long-lived process keeps one idle object per
    finished ``serve()`` call."""
    if server.getClientCount() == 0:
        return  # no client: destroying it now is safe
    _RETIRED.append(server)
