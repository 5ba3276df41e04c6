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
    p.add_argument("--speed", type=float, default=None,
                   help="recordings: x real time (default: the last one used, else 1; 0: as fast as possible)")
    p.add_argument("--loop", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="replay a recording forever (default: on for the demo, off otherwise)")
    p.add_argument("--view", default=None, choices=list(VIEWS), help="the event view (default: the last one used, "
                                                                      "else frames)")
    p.add_argument("--accumulate-ms", type=float, default=None,
                   help="event frames: the span of events the view shows (default: the last one used, else 40)")
    p.add_argument("--theme", default=None, choices=["dark", "light"],
                   help="colours of the window and the event view (default: the last one used, else dark)")
    p.add_argument("--record-dir", default="recordings", help="where 'Record session' writes (default recordings/)")
    p.add_argument("--duration", type=float, default=None, help="close the window after this many seconds")
    p.add_argument("--summary-json", default=None,
                   help="at exit, write the session's summary (as `evstream run --summary-json`: drops, latency, "
                        "energy, with --labels the stream score; plus painted frames) to this JSON file")
    p.add_argument("--labels", default=None,
                   help="CSV with t_start_us, t_end_us and a label/digit column (as `evstream run --labels`): the "
                        "true class beside each decision and the running accuracy")


def gui_config(args, saved: dict | None = None):
    """The :class:`~evstream.live.LiveConfig` of ``evstream gui``'s flags (what a new user gets without any);
    ``saved``: the choices of the last session (``app.settings.saved``), used where no flag is given."""
    from evstream.cli.run import live_options
    from evstream.live import LiveConfig

    saved = saved or {}
    loop = args.loop if args.loop is not None else args.source is None
    speed = args.speed if args.speed is not None else saved.get("speed", 1.0)
    options = live_options(args)
    if getattr(args, "filters", None) is None and "filters" in saved:  # the last session's filters
        options["filters"] = saved["filters"]
    return LiveConfig(speed=speed or None, loop=loop, view=args.view or saved.get("view", "frames"), **options)


def gui_display(args, saved: dict | None = None):
    """The :class:`app.display.Display` of the flags, else of the last session, else the defaults."""
    from app.display import Display

    saved = saved or {}
    acc = args.accumulate_ms if args.accumulate_ms is not None else saved.get("accumulate_ms", 40.0)
    return Display(accumulate_ms=acc, theme=args.theme or saved.get("theme", "dark"))


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
    from app.settings import saved, store
    from evstream.cli.run import labels_segments, read_labels

    settings = store()
    prefs = saved(settings)
    model = args.model or prefs.get("model") or str(DEMO_MODEL)
    config = gui_config(args, prefs)
    display = gui_display(args, prefs)
    labels = labels_segments(read_labels(args.labels)) if args.labels else None  # bad CSV: one line, no window
    return main(args.source, model, config, record_dir=args.record_dir, duration_s=args.duration, labels=labels,
                summary_json=args.summary_json,
                settings=settings, display=display)
