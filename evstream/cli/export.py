"""``evstream export IN OUT [--from S] [--to S]``: a recording, or a span of it, to a video drawn as the GUI's
event view draws it (.mp4, .avi) or to events (.aedat4, .npz, .h5), optionally filtered."""

from __future__ import annotations

HELP = "export a recording or a span of it to video (.mp4/.avi, as the GUI's event view) or events (.aedat4/.npz/.h5)"


def add_arguments(p):
    from evstream.live import VIEWS

    p.add_argument("input", help="a recording in any readable format")
    p.add_argument("output", help="OUT.mp4 / OUT.avi (video) or OUT.aedat4 / OUT.npz / OUT.h5 (events)")
    p.add_argument("--from", dest="t0", type=float, default=0.0, help="start, s after the first event (default 0)")
    p.add_argument("--to", dest="t1", type=float, default=None, help="end, s after the first event (default: the end)")
    p.add_argument("--fps", type=float, default=30.0, help="video: frames per second of stream time (default 30)")
    p.add_argument("--accumulate-ms", type=float, default=40.0, help="video: events shown per frame (default 40 ms)")
    p.add_argument("--view", default="frames", choices=list(VIEWS), help="video: the event view (default frames)")
    p.add_argument("--theme", default="dark", choices=["dark", "light"], help="video: background (default dark)")
    p.add_argument("--filters", default=None, metavar="SPEC", help="noise filters first, e.g. ba=10000,refractory=1000")


def run(args) -> int:
    from evstream.export import ExportSpec, export
    from evstream.fileio import exit_on_sigterm, same_file

    if same_file(args.input, args.output):
        from evstream.errors import EvstreamError

        raise EvstreamError("is both input and output: choose another output name", where=args.output)
    spec = ExportSpec(args.input, args.output, t0_us=int(args.t0 * 1e6),
                      t1_us=None if args.t1 is None else int(args.t1 * 1e6), fps=args.fps,
                      span_us=max(1, int(args.accumulate_ms * 1000)), kind=args.view, theme=args.theme,
                      filters=args.filters)
    with exit_on_sigterm():
        res = export(spec)
    what = f"{res['frames']} frames {res['size'][0]}x{res['size'][1]}" if "frames" in res else f"{res['events']} events"
    print(f"{args.input} -> {res['path']}: {what}")
    return 0
