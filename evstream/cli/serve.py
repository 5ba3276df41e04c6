"""``evstream serve FILE --port N [--host H] [--speed S] [--loop]``."""

from __future__ import annotations

HELP = "stream a recording as a DV network event stream (binds 127.0.0.1 unless --host)"


def add_arguments(p):
    p.add_argument("file", help="a recording in any readable format")
    p.add_argument("--port", type=int, default=7777)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed x real time (0: as fast as possible)")
    p.add_argument("--loop", action="store_true", help="replay forever")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the first client (0: don't)")


def run(args) -> int:
    from evstream.serve import serve

    import os
    import sys

    serve(args.file, args.port, host=args.host, speed=args.speed or None, loop=args.loop,
          wait_client_s=args.wait or None, log=lambda s: print(s, flush=True))
    # dv-processing's NetworkWriter destructor blocks while a client is still connected; the stream is
    # complete, so leave without running it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
