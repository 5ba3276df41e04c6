"""``evstream emulate INPUT OUT.aedat4 [--saccades]``: a video, a webcam or a still image to a recording.

OUT appears when the recording is complete (a temporary file is renamed); Ctrl-C ends a webcam recording
and keeps it, and abandons a video or image one."""

from __future__ import annotations

HELP = "turn a video, a webcam (webcam[:N]) or a still image (--saccades) into an event recording"


def add_arguments(p):
    p.add_argument("input", help="video file, webcam[:N], or an image file with --saccades")
    p.add_argument("output", help="OUT.aedat4 (or .npz)")
    p.add_argument("--saccades", action="store_true", help="move a still image through N-MNIST's three saccades")
    p.add_argument("--sensor", default="34x34", help="sensor WxH for --saccades (default 34x34)")
    p.add_argument("--threshold", type=float, default=None, help="contrast threshold (log units)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop a webcam/video after this long (a webcam also stops, keeping the file, on Ctrl-C)")
    p.add_argument("--seed", type=int, default=0, help="seed of the emulator's random draws (same input and seed: same events)")


def run(args) -> int:
    from dataclasses import asdict, replace

    from evstream.emulator import NMNIST_EMULATOR, EmulatorConfig, EmulatorSource, SaccadeSource
    from evstream.errors import EvstreamError
    from evstream.writers import open_writer

    cfg = EmulatorConfig(**asdict(NMNIST_EMULATOR)) if args.saccades else EmulatorConfig()
    cfg = replace(cfg, seed=args.seed)
    if args.threshold is not None:
        cfg = replace(cfg, pos_threshold=args.threshold, neg_threshold=args.threshold)
    if args.saccades:
        import cv2

        img = cv2.imread(args.input, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise EvstreamError("cannot read this image", where=args.input)
        try:
            w, h = (int(v) for v in args.sensor.lower().split("x"))
        except ValueError:
            raise EvstreamError(f"bad --sensor {args.sensor!r}: expected WxH") from None
        src = SaccadeSource([img], (w, h), seed=args.seed, config=cfg)
    elif args.input.startswith("webcam"):
        src = EmulatorSource.from_webcam(int(args.input.partition(":")[2] or 0), config=cfg)
    else:
        src = EmulatorSource.from_video(args.input, config=cfg)
    live = args.input.startswith("webcam")
    with src, open_writer(args.output, src.sensor_size) as out:
        t_first = None
        try:
            for chunk in src:
                out.write(chunk)
                t_first = chunk.t_start if t_first is None else t_first
                if args.max_seconds and chunk.t_end - t_first > args.max_seconds * 1e6:
                    break
        except KeyboardInterrupt:
            if not live:  # a video or image cut short: no file (OUT is written only when complete)
                raise
            print("stopped (Ctrl-C)")
    print(f"{args.input} -> {args.output}: {out.count} events, sensor {src.sensor_size[0]}x{src.sensor_size[1]}")
    return 0
