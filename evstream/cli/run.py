"""``evstream run SOURCE [--model CKPT] [--mode M] [--json-lines] ...``: the live pipeline without a window.

The same :class:`evstream.live.Pipeline` the GUI drives: one line per decision (JSON with
``--json-lines``), a summary at the end (drops, per-stage latency p50/p99, energy against the ANN).
"""

from __future__ import annotations

import sys

HELP = "run the live pipeline headless on a recording, a DV stream or a camera: one line per decision"


def add_arguments(p):
    from evstream.paths import DEMO_MODEL

    p.add_argument("source", help="a recording, tcp://HOST:PORT, camera[:SERIAL] or webcam[:N]")
    p.add_argument("--model", default=str(DEMO_MODEL), help="checkpoint (default: the shipped models/mst-nmnist.pt)")
    add_live_arguments(p)
    p.add_argument("--speed", type=float, default=0.0,
                   help="recordings: x real time (0: as fast as possible, never drops; default 0)")
    p.add_argument("--loop", action="store_true", help="replay a recording forever (stop with Ctrl-C)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-decisions", type=int, default=None, help="stop after this many decisions")
    p.add_argument("--record", default=None, metavar="BASE",
                   help="record events to BASE.aedat4 and every step to BASE.csv")
    p.add_argument("--labels", default=None,
                   help="CSV with t_start_us, t_end_us and a label/digit column (times from the first event): "
                        "score the decisions as `evstream eval-stream` does (a decision counts where one "
                        "labelled span covers >= 60%% of its window; onset, found, false switches)")
    p.add_argument("--json-lines", action="store_true", help="one JSON object per decision on stdout")
    p.add_argument("--summary-json", default=None, help="write the final summary to this JSON file")


def add_live_arguments(p) -> None:
    """The live pipeline's model and decision flags, shared by ``run``, ``gui`` and ``eval-stream``."""
    p.add_argument("--mode", default=None,
                   help="conversion mode (default: ecmt where the model has it, else its first; see model.modes)")
    p.add_argument("--slice-ms", type=float, default=10.0, help="time slice length in ms (default 10)")
    p.add_argument("--slice-events", type=int, default=0, help="slices of N events instead of time slices")
    p.add_argument("--state", default="reset", choices=["reset", "carry"],
                   help="reset (default): each decision starts from a reset SNN on the last --window-ms of "
                        "events; carry: membranes carry over from slice to slice (the former behaviour)")
    p.add_argument("--decide-every-ms", type=float, default=None,
                   help="state reset: a fresh decision this often, in stream time (default: 50 ms for ecmt and "
                        "spikformer, 200 ms for mst)")
    p.add_argument("--window-ms", type=float, default=None,
                   help="state reset: the span of events one decision summarises (default: the checkpoint's "
                        "window_us)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="timesteps per decision at most (default: the checkpoint's for the mode; else mst 32, "
                        "ecmt 4, spikformer 4)")
    p.add_argument("--min-steps", type=int, default=1, help="timesteps per decision at least (early exit)")
    p.add_argument("--burn-in", type=float, default=None, metavar="F",
                   help="state reset: the first fraction F of a decision's timesteps is left out of its answer "
                        "(IF membranes settling; default: the checkpoint's, else 0.5 for mst, 0 for others)")
    p.add_argument("--early-exit", type=float, default=None, metavar="CONF",
                   help="decide as soon as the confidence reaches CONF (0..1; default: off)")
    p.add_argument("--smooth", type=float, default=0.4,
                   help="state reset: weight the previous decisions' mean keeps after 50 ms of stream time "
                        "(decisions dt apart: smooth ** (dt / 50 ms); 0: none; default 0.4)")
    p.add_argument("--switch-margin", type=float, default=0.05,
                   help="state reset: switch the announced class only when the new one leads by this much "
                        "(default 0.05)")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="state reset: below this smoothed confidence say 'undecided' (counted; default 0: never)")
    p.add_argument("--window-slices", type=int, default=None,
                   help="state carry: slices in the model's input window (default: as many as span one "
                        "training sample)")
    p.add_argument("--steps-per-slice", type=int, default=1, help="state carry: SNN timesteps per slice (default 1)")
    p.add_argument("--decay", type=float, default=0.0,
                   help="state carry: running output = exponential mean with this decay per step (0: plain mean)")
    p.add_argument("--roi", default=None, metavar="X,Y,W,H",
                   help="classify only this region of the camera (pixels; e.g. a screen showing digits)")
    p.add_argument("--downscale", default=None, metavar="auto|N",
                   help="pool N x N camera pixels into one model pixel (events summed, as tonic's Downsample); "
                        "auto: the largest N that still fills the model's input from the region (default: auto "
                        "with --roi, else none: the camera must be the model's size)")
    p.add_argument("--pool", default="sum", choices=["sum", "mean"],
                   help="downscaling: sum every event into its pooled pixel (tonic's Downsample; default) or keep "
                        "1 of N*N per pooled pixel (mean: the counts a camera of the model's resolution gives)")
    p.add_argument("--filters", default=None, metavar="SPEC",
                   help="noise filters before the view and the model, e.g. ba=10000,refractory=1000 (µs): "
                        "background activity (drop events no 4-neighbour supported within that time) and "
                        "refractory (drop a pixel's events closer than that to its previous one); default none")
    p.add_argument("--mask", type=float, default=0.0, help="spike mask ratio (RSM) on Q, K, attention")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    p.add_argument("--step", default="auto", choices=["auto", "eager", "inductor", "ort", "batched"],
                   help="how the SNN step runs: auto (default: batched, what measured best; benchmarks/RESULTS.md "
                        "'Live speed'), eager (the reference runner, one call per step), batched (a decision's "
                        "steps in one call, layer by layer), inductor / ort (that step compiled; minutes to "
                        "compile on a 2-core machine; cache: ~/.cache/evstream/compiled)")
    p.add_argument("--unpaced-batch", type=int, default=8,
                   help="unpaced replay (--speed 0): compute up to this many decisions in one call, the same "
                        "answers faster (default 8; 1: one at a time)")
    p.add_argument("--unpaced-threads", type=int, default=2,
                   help="unpaced replay: threads computing those decisions side by side (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the spike masks")


def live_options(args) -> dict:
    """The :class:`~evstream.live.LiveConfig` fields the shared live flags set (a bad region or factor: one
    line, before anything is loaded)."""
    from evstream.filters import parse_filters
    from evstream.live.config import parse_downscale, parse_roi

    return dict(mode=args.mode, slice_ms=args.slice_ms, slice_events=args.slice_events, state=args.state,
                decide_every_ms=args.decide_every_ms, window_ms=args.window_ms, max_steps=args.max_steps,
                min_steps=args.min_steps, burn_in=args.burn_in, early_exit=args.early_exit, smooth=args.smooth,
                switch_margin=args.switch_margin, min_confidence=args.min_confidence,
                window_slices=args.window_slices, steps_per_slice=args.steps_per_slice,
                decay=args.decay if args.decay > 0 else None, mask_ratio=args.mask, threads=args.threads,
                seed=args.seed, roi=parse_roi(args.roi), downscale=parse_downscale(args.downscale),
                pool=args.pool, step=args.step, filters=parse_filters(getattr(args, "filters", None)),
                unpaced_batch=args.unpaced_batch, unpaced_threads=args.unpaced_threads)


def read_labels(path) -> list[tuple[int, int, str]]:
    """(t_start_us, t_end_us, label) rows of a labels CSV; one-line EvstreamError when it does not fit."""
    import csv

    from evstream.errors import EvstreamError

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise EvstreamError(f"cannot read labels ({exc.strerror})", where=path) from None
    key = next((k for k in ("label", "class", "digit") if rows and k in rows[0]), None)
    if not rows or key is None or "t_start_us" not in rows[0] or "t_end_us" not in rows[0]:
        raise EvstreamError("labels CSV needs columns t_start_us, t_end_us and label (or class/digit)", where=path)
    try:
        return [(int(r["t_start_us"]), int(r["t_end_us"]), str(r[key]).strip()) for r in rows]
    except ValueError:
        raise EvstreamError("labels CSV has a non-integer time", where=path) from None


def labels_segments(labels):
    """The labels CSV rows as :class:`~evstream.streams.Segment` s, in time order."""
    from evstream.streams import Segment

    return [Segment(i, lab, a, b) for i, (a, b, lab) in enumerate(sorted(labels))]


def live_config(args):
    """The :class:`~evstream.live.LiveConfig` of ``evstream run``'s flags."""
    from evstream.live import LiveConfig

    return LiveConfig(speed=args.speed or None, loop=args.loop, **live_options(args))


def run(args) -> int:
    import json

    from evstream.live import Pipeline, decision_json
    from evstream.live.summary import live_summary

    labels = read_labels(args.labels) if args.labels else None
    segments = labels_segments(labels) if labels else None
    pipe = Pipeline(args.source, args.model, live_config(args))
    if args.record:
        pipe.start_recording(args.record)
    decisions: list[dict] = []

    def on_decision(rec):
        label = {}
        if segments is not None:
            from evstream.streams import truth_of

            truth = truth_of(segments, rec.t_us, rec.window_us)
            label["label"] = truth.label if truth is not None else None
            decisions.append(rec.to_dict())
        if args.json_lines:
            print(decision_json(rec, **label), flush=True)
        else:
            extra = f"  (label {label['label']})" if label else ""
            print(f"{rec.t_us / 1e6:8.3f} s  {str(rec.class_name):>9}  conf {rec.confidence:.2f}  "
                  f"T={rec.timesteps:<3d} {rec.reason:<9} {rec.energy_uJ:8.2f} µJ{extra}", flush=True)

    st = pipe.run(on_decision=on_decision, max_decisions=args.max_decisions, duration_s=args.duration)
    lat = st["latency"]
    summary = live_summary(pipe, st, args.source, args.model, decisions, segments)
    if args.summary_json:
        from evstream.streams import save_report

        save_report(args.summary_json, summary)
    out = sys.stderr if args.json_lines else sys.stdout
    steps = max(1, summary["steps"])
    acc = ""
    if segments is not None:
        from evstream.stream_eval import summary_line

        acc = "\n" + summary_line(summary["stream"])
    print(f"{summary['decisions']} decisions, {summary['steps']} steps, {summary['slices']} slices, "
          f"{summary['dropped_slices']} dropped; SNN {summary['snn_energy_uJ_total'] / steps:.2f} µJ/step vs ANN "
          f"{summary['ann_energy_uJ_per_inference']:.2f} µJ/inference; step p50 "
          f"{lat.get('step', {}).get('p50_ms', 0):.2f} ms{acc}", file=out)
    if "filters" in summary:
        c = summary["filters"]
        print(f"filters: {c['in']} events in, " + ", ".join(f"{k} removed {v}" for k, v in c.items() if k != "in"),
              file=out)
    return 0
