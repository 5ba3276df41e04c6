"""Emulator speed: a 640x480 stream at 60 frames/s, and one 34x34 three-saccade sample; ours (numba) vs a
straightforward vectorised-numpy emulator with the same pixel model, on the same frames, in one run.

    python benchmarks/bench_emulator.py [--seconds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.emulator import Emulator, EmulatorConfig, emulate_saccades, read_mnist_idx  # noqa: E402
from evstream.events import EVENT_DTYPE  # noqa: E402


def numpy_emulate(frames, times, cfg: EmulatorConfig):
    """The same model written with whole-array numpy operations (no per-pixel loop): the peer."""
    h, w = frames[0].shape
    ref = np.log(frames[0].ravel() / 255.0 + cfg.log_eps)
    thr_p = np.full(w * h, cfg.pos_threshold)
    thr_n = np.full(w * h, cfg.neg_threshold)
    out = []
    for f, t0, t1 in zip(frames[1:], times[:-1], times[1:]):
        logi = np.log(f.ravel() / 255.0 + cfg.log_eps)
        d = logi - ref
        thr = np.where(d > 0, thr_p, thr_n)
        k = np.floor(np.abs(d) / thr).astype(np.int64)
        idx = np.repeat(np.arange(w * h), k)
        j = np.arange(len(idx)) - np.repeat(np.cumsum(k) - k, k) + 1
        ev = np.empty(len(idx), EVENT_DTYPE)
        ev["t"] = t0 + ((t1 - t0) * (j * thr[idx]) / np.abs(d[idx])).astype(np.int64)
        ev["x"] = idx % w
        ev["y"] = idx // w
        ev["p"] = d[idx] > 0
        ref += np.sign(d) * k * thr
        out.append(ev[np.argsort(ev["t"], kind="stable")])
    return out


def scene(n, w=640, h=480, fps=60):
    """A textured scene panning at 120 px/s plus a moving bright disc."""
    import cv2

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 400), dtype=np.uint8), (0, 0), 3)
    frames = []
    for i in range(n):
        x = int(i * 120 / fps)
        f = tex[:, x:x + w].copy()
        cv2.circle(f, (int(w / 2 + 150 * np.sin(i / 10)), h // 2), 40, 255, -1)
        frames.append(f)
    return frames, [int(round(i * 1e6 / fps)) for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json")
    ap.add_argument("--data", default=os.environ.get("EVSTREAM_DATA", str(REPO.parent / "shared" / "data")))
    args = ap.parse_args()
    n = int(args.seconds * 60)
    frames, times = scene(n)
    cfg = EmulatorConfig(threshold_sigma=0.0)

    emu = Emulator((640, 480), cfg)
    emu.emulate(frames[0], times[0]); emu.emulate(frames[1], times[1])  # compile / warm-up
    best_ours = None
    for _ in range(3):
        emu = Emulator((640, 480), cfg)
        t0 = time.perf_counter()
        n_ours = sum(len(emu.emulate(f, t)) for f, t in zip(frames, times))
        dt = time.perf_counter() - t0
        best_ours = dt if best_ours is None else min(best_ours, dt)
    t0 = time.perf_counter()
    n_np = sum(len(e) for e in numpy_emulate(frames, times, cfg))
    t_np = time.perf_counter() - t0

    try:
        images, _ = read_mnist_idx(Path(args.data) / "mnist_images")
        imgs = images[:50]
    except Exception:
        import cv2
        imgs = [cv2.putText(np.zeros((28, 28), np.uint8), str(d), (6, 23), 0, 0.9, 255, 3) for d in range(10)]
    emulate_saccades(imgs[0])
    ts = []
    for i, img in enumerate(imgs):
        t0 = time.perf_counter()
        emulate_saccades(img, seed=i)
        ts.append(time.perf_counter() - t0)

    res = {
        "stream_640x480_60fps": {"seconds_of_video": args.seconds, "events": n_ours,
                                 "ours_s": best_ours, "ours_x_realtime": args.seconds / best_ours,
                                 "numpy_peer_s": t_np, "numpy_peer_events": n_np,
                                 "numpy_peer_x_realtime": args.seconds / t_np, "ratio": t_np / best_ours},
        "saccade_34x34_ms": {"median": float(np.median(ts) * 1e3), "max": float(np.max(ts) * 1e3),
                             "samples": len(ts)},
    }
    s = res["stream_640x480_60fps"]
    print(f"640x480 @ 60 fps, {args.seconds:g} s of video, {n_ours} events: ours {best_ours:.3f} s "
          f"({s['ours_x_realtime']:.1f}x real time), numpy peer {t_np:.3f} s ({s['numpy_peer_x_realtime']:.1f}x), "
          f"ours/peer speed {s['ratio']:.1f}x")
    print(f"34x34 three-saccade sample: median {res['saccade_34x34_ms']['median']:.1f} ms, "
          f"max {res['saccade_34x34_ms']['max']:.1f} ms over {len(ts)} MNIST images")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
