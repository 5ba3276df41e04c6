"""``evstream eval-stream``: a labelled split played back to back as continuous streams through the live
pipeline; right/scored decisions, decisions/s, onset latency, recordings found, false switches, energy."""

from __future__ import annotations

HELP = ("play a labelled split back to back as one continuous stream through the live pipeline and score "
        "every decision (accuracy, onset, found, false switches, µJ vs the ANN)")


def add_arguments(p):
    from evstream.paths import DEMO_MODEL, data_root

    data = data_root()
    p.add_argument("--model", default=str(DEMO_MODEL), help="checkpoint (default: the shipped models/mst-nmnist.pt)")
    p.add_argument("--dataset", default="nmnist", choices=["nmnist", "ncars", "cifar10dvs", "asl"],
                   help="dataset layout of --root (default nmnist)")
    p.add_argument("--root", default=str(data / "nmnist_small" / "train"), help="dataset folder")
    p.add_argument("--labels", default=None, help="label list for a folder of N-MNIST files (default: ROOT/labels.txt)")
    p.add_argument("--split", default="val", choices=["val", "train", "test", "all"],
                   help="val: the seeded stratified 10%% held out of training (default); test: the dataset's "
                        "test split; all: every labelled file")
    p.add_argument("--limit", type=int, default=0, help="use only the first N recordings of the split")
    p.add_argument("--gaps-ms", default="10,0-200",
                   help="one stream per item: a fixed gap (10) or a uniform range (0-200), in ms, between "
                        "recordings (default: '10,0-200': one ordered stream with 10 ms gaps, one shuffled "
                        "with 0-200 ms gaps)")
    p.add_argument("--noise-hz", type=float, default=0.0, help="background noise events/s over the sensor")
    p.add_argument("--stream-seed", type=int, default=0, help="stream order and gaps (default 0)")
    p.add_argument("--singles", type=int, default=0,
                   help="also replay the first N recordings alone and count how often the last decision is right")
    p.add_argument("--oracle", action="store_true",
                   help="also score an oracle that knows where recordings start (windows clipped, state reset "
                        "at every true boundary): the upper bound of the live rule")
    p.add_argument("--json", default=None, help="write the report (with every decision) to this JSON file")
    p.add_argument("--plot", default=None, help="timeline plot (truth, decisions, confidence) to this PNG")
    p.add_argument("--cache", default=None, help="dataset cache folder (default ~/.cache/evstream)")
    from evstream.cli.run import add_live_arguments

    add_live_arguments(p)


def parse_gaps(spec: str) -> list[tuple[int, int]]:
    from evstream.errors import EvstreamError

    out = []
    for item in spec.split(","):
        try:
            lo, _, hi = item.partition("-")
            a, b = float(lo), float(hi or lo)
        except ValueError:
            raise EvstreamError(f"--gaps-ms: {item!r} is not a gap (10) or a range (0-200) in ms") from None
        if a < 0 or b < a:
            raise EvstreamError(f"--gaps-ms: {item!r} is not a non-negative range")
        out.append((int(a * 1000), int(b * 1000)))
    return out


def run(args) -> int:
    from pathlib import Path

    from evstream.cli.run import live_options
    from evstream.stream_eval import StreamEvalConfig, evaluate_stream, plot_timeline
    from evstream.streams import StreamConfig, save_report

    labels = args.labels
    if labels is None and args.dataset == "nmnist" and (Path(args.root) / "labels.txt").exists():
        labels = str(Path(args.root) / "labels.txt")
    gaps = parse_gaps(args.gaps_ms)
    streams = tuple(StreamConfig(gap_us=g, shuffle=(k > 0), seed=args.stream_seed + k, noise_hz=args.noise_hz)
                    for k, g in enumerate(gaps))
    cfg = StreamEvalConfig(model=args.model, dataset=args.dataset, root=args.root, labels=labels, split=args.split,
                           limit=args.limit, streams=streams, singles=args.singles, with_oracle=args.oracle, cache=args.cache,
                           live=live_options(args))
    res = evaluate_stream(cfg)
    if args.json:
        save_report(args.json, res)
    if args.plot:
        plot_timeline(res, args.plot)
    return 0
