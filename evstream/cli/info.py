"""``evstream info FILE [--json]``: what a recording holds, read in one streaming pass."""

from __future__ import annotations

import json

import numpy as np

HELP = "format, sensor size, event count, duration, event rates and polarity balance of a recording"


def add_arguments(p):
    p.add_argument("file", help="a recording in any readable format")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--window-ms", type=float, default=10.0, help="window for the peak event rate (ms)")


def summarize(path, window_us: int = 10_000) -> dict:
    """Statistics of the recording at ``path`` in one bounded-memory pass over its chunks."""
    from evstream.readers import open_reader

    n = n_on = 0
    t0 = t1 = None
    counts: dict[int, int] = {}
    with open_reader(path) as r:
        for chunk in r.chunks():
            ev = chunk.events
            n += len(ev)
            n_on += int(ev["p"].sum())
            if t0 is None:
                t0 = int(ev["t"][0])
            t1 = int(ev["t"][-1])
            bins, c = np.unique((ev["t"] - t0) // window_us, return_counts=True)
            for b, k in zip(bins.tolist(), c.tolist()):
                counts[b] = counts.get(b, 0) + k
        fmt, (w, h), meta = r.format, r.sensor_size, r.meta
    duration = (t1 - t0) if n else 0
    return {
        "file": str(path),
        "format": fmt,
        "width": w,
        "height": h,
        "events": n,
        "t_start_us": t0,
        "duration_us": duration,
        "mean_rate_ev_per_s": (n / (duration * 1e-6)) if duration > 0 else None,
        "peak_rate_ev_per_s": (max(counts.values()) / (window_us * 1e-6)) if counts else None,
        "peak_window_us": window_us,
        "on_fraction": (n_on / n) if n else None,
        "camera": meta.get("camera") or meta.get("chip") or meta.get("plugin_name"),
    }


def run(args) -> int:
    info = summarize(args.file, int(args.window_ms * 1000))
    if args.json:
        print(json.dumps(info))
        return 0
    rate = lambda v: "-" if v is None else f"{v / 1e6:.3f} Mev/s"  # noqa: E731
    rows = [
        ("file", info["file"]),
        ("format", info["format"]),
        ("sensor", f"{info['width']} x {info['height']}"),
        ("events", f"{info['events']:,}"),
        ("duration", f"{info['duration_us'] / 1e3:.1f} ms"),
        ("mean rate", rate(info["mean_rate_ev_per_s"])),
        (f"peak rate ({args.window_ms:g} ms)", rate(info["peak_rate_ev_per_s"])),
        ("ON fraction", "-" if info["on_fraction"] is None else f"{info['on_fraction']:.3f}"),
    ]
    if info["camera"]:
        rows.append(("camera", str(info["camera"])))
    for k, v in rows:
        print(f"{k:>18}  {v}")
    return 0
