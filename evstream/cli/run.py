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
    p.add_argument("--mode", default=None, help="conversion mode (default: ecmt where the model has it, else its first; see model.modes)")
    p.add_argument("--slice-ms", type=float, default=10.0, help="time slice length in ms (default 10)")
    p.add_argument("--slice-events", type=int, default=0, help="slices of N events instead of time slices")
    p.add_argument("--window-slices", type=int, default=None,
                   help="slices in the model's input window (default: as many as span one training sample, "
                   "the checkpoint's window_us; else its n_frames)")
    p.add_argument("--decay", type=float, default=0.5,
                   help="running output = exponential mean with this decay per step (0: plain mean; default 0.5)")
    p.add_argument("--steps-per-slice", type=int, default=1, help="SNN timesteps per slice (default 1)")
    p.add_argument("--max-steps", type=int, default=32, help="timesteps per decision at most (default 32)")
    p.add_argument("--min-steps", type=int, default=1, help="timesteps per decision at least (early exit)")
    p.add_argument("--early-exit", type=float, default=None, metavar="CONF",
                   help="decide as soon as the confidence reaches CONF (0..1; default: off)")
    p.add_argument("--mask", type=float, default=0.0, help="spike mask ratio (RSM) on Q, K, attention")
    p.add_argument("--speed", type=float, default=0.0,
                   help="recordings: x real time (0: as fast as possible, never drops; default 0)")
    p.add_argument("--loop", action="store_true", help="replay a recording forever (stop with Ctrl-C)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-decisions", type=int, default=None, help="stop after this many decisions")
    p.add_argument("--record", default=None, metavar="BASE",
                   help="record events to BASE.aedat4 and every step to BASE.csv")
    p.add_argument("--labels", default=None,
                   help="CSV with t_start_us, t_end_us and a label/digit column (times from the first event): "
                        "score each decision against the label at its time")
    p.add_argument("--json-lines", action="store_true", help="one JSON object per decision on stdout")
    p.add_argument("--summary-json", default=None, help="write the final summary to this JSON file")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    p.add_argument("--seed", type=int, default=0)


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


def label_at(labels, t_us):
    for a, b, lab in labels:
        if a <= t_us < b:
            return lab
    return None


def live_config(args):
    """The :class:`~evstream.live.LiveConfig` of ``evstream run``'s flags."""
    from evstream.live import LiveConfig

    return LiveConfig(mode=args.mode, slice_ms=args.slice_ms, slice_events=args.slice_events,
                      window_slices=args.window_slices, steps_per_slice=args.steps_per_slice,
                      max_steps=args.max_steps, min_steps=args.min_steps, early_exit=args.early_exit,
                      mask_ratio=args.mask, speed=args.speed or None, loop=args.loop, threads=args.threads,
                      seed=args.seed, decay=args.decay if args.decay > 0 else None)


def run(args) -> int:
    import json

    from evstream.live import Pipeline, decision_json

    labels = read_labels(args.labels) if args.labels else None
    pipe = Pipeline(args.source, args.model, live_config(args))
    if args.record:
        pipe.start_recording(args.record)
    scored = {"n": 0, "correct": 0}

    def on_decision(rec):
        label = {}
        if labels is not None:
            label["label"] = truth = label_at(labels, rec.t_us)
            if truth is not None:
                scored["n"] += 1
                scored["correct"] += int(truth == rec.class_name)
        if args.json_lines:
            print(decision_json(rec, **label), flush=True)
        else:
            extra = f"  (label {label['label']})" if label else ""
            print(f"{rec.t_us / 1e6:8.3f} s  {rec.class_name:>6}  conf {rec.confidence:.2f}  "
                  f"T={rec.timesteps:<3d} {rec.reason:<9} {rec.energy_uJ:8.2f} µJ{extra}", flush=True)

    st = pipe.run(on_decision=on_decision, max_decisions=args.max_decisions, duration_s=args.duration)
    lat = st["latency"]
    summary = {"source": args.source, "model": args.model, "mode": pipe.lm.mode if pipe.lm else None,
               "slices": st["slices_in"], "dropped_slices": st["dropped_slices"], "steps": st["steps"],
               "decisions": st["decisions"], "ann_energy_uJ_per_inference": st["ann_uJ"],
               "snn_energy_uJ_total": pipe.energy.total_uJ,
               "latency_ms": {k: {"p50": round(v["p50_ms"], 3), "p99": round(v["p99_ms"], 3)} for k, v in lat.items()}}
    if labels is not None:
        summary["labelled_decisions"] = scored["n"]
        summary["accuracy"] = scored["correct"] / scored["n"] if scored["n"] else None
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=1)
    out = sys.stderr if args.json_lines else sys.stdout
    steps = max(1, summary["steps"])
    acc = f", accuracy {summary['accuracy']:.3f} on {scored['n']} labelled" if labels is not None and scored["n"] else ""
    print(f"{summary['decisions']} decisions, {summary['steps']} steps, {summary['slices']} slices, "
          f"{summary['dropped_slices']} dropped; SNN {summary['snn_energy_uJ_total'] / steps:.2f} µJ/step vs ANN "
          f"{summary['ann_energy_uJ_per_inference']:.2f} µJ/inference; step p50 "
          f"{lat.get('step', {}).get('p50_ms', 0):.2f} ms{acc}", file=out)
    return 0
