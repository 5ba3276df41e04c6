"""``evstream gui [SOURCE] [--model CKPT]``: the live GUI (``app/``) over the same pipeline as ``evstream run``."""

from __future__ import annotations

HELP = "the live GUI: events, the spiking transformer's belief, spikes, energy and latency (default: the demo)"


def add_arguments(p):
    from evstream.live import VIEWS
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    p.add_argument("source", nargs="?", default=None,
                   help=f"a recording, tcp://HOST:PORT, camera[:SERIAL] or webcam[:N] "
                        f"(default: {DEMO_RECORDING.relative_to(DEMO_RECORDING.parents[1])}, looping)")
    p.add_argument("--model", default=None,
                   help=f"checkpoint (default: {DEMO_MODEL.relative_to(DEMO_MODEL.parents[1])})")
    from evstream.cli.run import add_live_arguments

    add_live_arguments(p)
    p.add_argument("--speed", type=float, default=1.0, help="recordings: x real time (default 1)")
    p.add_argument("--loop", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="replay a recording forever (default: on for the demo, off otherwise)")
    p.add_argument("--view", default="frames", choices=list(VIEWS))
    p.add_argument("--record-dir", default="recordings", help="where 'Record session' writes (default recordings/)")
    p.add_argument("--duration", type=float, default=None, help="close the window after this many seconds")
    p.add_argument("--labels", default=None,
                   help="CSV with t_start_us, t_end_us and a label/digit column (as `evstream run --labels`): the "
                        "true class beside each decision and the running accuracy")


def gui_config(args):
    """The :class:`~evstream.live.LiveConfig` of ``evstream gui``'s flags (what a new user gets without any)."""
    from evstream.cli.run import live_options
    from evstream.live import LiveConfig

    loop = args.loop if args.loop is not None else args.source is None
    return LiveConfig(speed=args.speed or None, loop=loop, view=args.view, **live_options(args))


def run(args) -> int:
    import os
    import sys

    from evstream.errors import EvstreamError
    from evstream.paths import DEMO_MODEL

    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in
                                                     ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise EvstreamError("no display to open a window on (no DISPLAY or WAYLAND_DISPLAY): run the same "
                            "pipeline headless with `evstream run SOURCE`, or set QT_QPA_PLATFORM=offscreen")
    try:
        from app import main
        from app.qtcheck import problem
    except ImportError as exc:  # PyQt6 / pyqtgraph missing: one line
        raise EvstreamError(f"the GUI needs PyQt6 and pyqtgraph ({exc})") from None
    missing = problem()  # before Qt aborts the process on a missing platform library
    if missing:
        raise EvstreamError(missing)
    model = args.model or str(DEMO_MODEL)
    from evstream.cli.run import labels_segments, read_labels

    config = gui_config(args)
    labels = labels_segments(read_labels(args.labels)) if args.labels else None  # bad CSV: one line, no window
    return main(args.source, model, config, record_dir=args.record_dir, duration_s=args.duration, labels=labels)
