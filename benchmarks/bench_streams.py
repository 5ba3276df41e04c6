"""Streaming accuracy of every shipped checkpoint in its live modes, on the held-out real N-MNIST recordings
played back to back (`evstream eval-stream`), with the oracle and the segmented numbers beside them.

    python benchmarks/bench_streams.py --json benchmarks/bench_streams.json [--limit 100] [--singles 30]

Prints one markdown row per (checkpoint, mode, stream kind) for models/README.md and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evstream.paths import MODELS, data_root  # noqa: E402
from evstream.stream_eval import StreamEvalConfig, evaluate_stream  # noqa: E402
from evstream.streams import StreamConfig, save_report  # noqa: E402

CONFIGS = [  # (checkpoint, live options)
    ("mst-nmnist.pt", {}),  # the default: ecmt
    ("mst-nmnist.pt", {"mode": "mst"}),
    ("spikformer-nmnist.pt", {}),
]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="recordings of the validation split (0: all 100)")
    ap.add_argument("--singles", type=int, default=30, help="recordings also replayed alone")
    ap.add_argument("--oracle", action="store_true", help="also score the oracle")
    ap.add_argument("--only", default=None, help="comma-separated indices into CONFIGS")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    root = data_root() / "nmnist_small" / "train"
    streams = (StreamConfig(gap_us=(10_000, 10_000), shuffle=False, seed=0),
               StreamConfig(gap_us=(0, 200_000), shuffle=True, seed=1))
    picked = [CONFIGS[int(i)] for i in args.only.split(",")] if args.only else CONFIGS
    results = {"cpu": cpu_name(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    for ckpt, live in picked:
        cfg = StreamEvalConfig(model=str(MODELS / ckpt), root=str(root), labels=str(root / "labels.txt"),
                               limit=args.limit, streams=streams, singles=args.singles, live=live,
                               with_oracle=args.oracle)
        t0 = time.time()
        res = evaluate_stream(cfg, progress=lambda s: print(f"  {s}", flush=True))
        res["wall_s"] = time.time() - t0
        for s in res["streams"]:
            s.pop("decisions", None)
            s.pop("segments", None)
        results["runs"].append({"checkpoint": ckpt, "live": live, **res})
        for s in res["streams"]:
            r = s["report"]
            kind = "ordered, 10 ms gaps" if not r["stream"]["shuffle"] else "shuffled, 0-200 ms gaps"
            orc = f"{s['oracle']['accuracy']:.3f}" if "oracle" in s else "–"
            print(f"| {ckpt} | {r['mode']} | {kind} | {r['accuracy']:.3f} ({r['right']}/{r['scored']}) | "
                  f"{r['decisions_per_s']:.1f} | {r['found']}/{r['recordings']} | {r['onset_ms_median']:.0f} | "
                  f"{r['false_switches_per_min']:.1f} | {r['undecided']} | {r['steps_per_decision']:.1f} | "
                  f"{r['energy_uJ_per_decision']:.1f} ({r['ann_energy_uJ_per_decision']:.1f}) | {orc} |", flush=True)
        if "singles" in res:
            print(f"  replayed alone: {res['singles']['last_right']}/{res['singles']['recordings']}", flush=True)
    if args.json:
        save_report(args.json, results)
    print(json.dumps({"cpu": results["cpu"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
