"""``evstream serve FILE --port N [--host H] [--speed S] [--loop]``."""

from __future__ import annotations

HELP = "stream a recording as a DV network event stream (binds 127.0.0.1 unless --host)"


def add_arguments(p):
    p.add_argument("file", help="a recording in any readable format")
    p.add_argument("--port", type=int, default=7777, help="TCP port to listen on (default 7777)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed x real time (0: as fast as possible)")
    p.add_argument("--loop", action="store_true", help="replay forever")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the first client (0: don't)")
    p.add_argument("--linger", type=float, default=2.0,
                   help="seconds to keep connections open after the last event, for clients to read the rest")
    p.add_argument("--max-clients", type=int, default=10, help="clients served at once; later ones are turned away")
    p.add_argument("--client-buffer-mb", type=float, default=64.0,
                   help="packets queued per client (MB); a client that reads slower loses whole packets")


def run(args) -> int:
    from evstream.serve import serve

    serve(args.file, args.port, host=args.host, speed=args.speed or None, loop=args.loop,
          wait_client_s=args.wait or None, linger_s=args.linger, max_clients=args.max_clients,
          max_queued_bytes=int(args.client_buffer_mb * (1 << 20)), log=lambda s: print(s, flush=True))
    return 0
