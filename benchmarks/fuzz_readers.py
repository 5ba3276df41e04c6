"""Fuzz `evstream info` and `evstream convert` with damaged variants of a real file of every format.

    python benchmarks/fuzz_readers.py --variants 400 --json benchmarks/fuzz_readers.json --results

Each variant (tests/fuzz_corpus.py: truncations, byte flips, extreme int32 sizes, zeroed / random / inserted /
deleted / duplicated runs, appended garbage) runs through both commands, each in its own subprocess, one at
a time. A run passes when it ends within --limit-s seconds of CPU time (wall time is reported, not judged: on a
shared machine it measures the other jobs; a run still going after 300 s is killed and fails) with exit 0,
or exit 2 and exactly one line on stderr (no traceback), its peak memory (ru_maxrss) stays within 4 x the file size + 300 MB, and what
``convert`` wrote is readable: for exit 0 the same event count as ``info``, for a truncated file exactly
the events before the cut. Writes a JSON and, with --results, a table into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fuzz_corpus import FORMATS, SUFFIX, seed_bytes, variant  # noqa: E402

from evstream.readers import read_events  # noqa: E402

HARD_KILL_S = 300  # a run still going after this (wall clock) is killed and failed: a hang
AS_LIMIT = 16 << 30  # address-space ceiling for each run: protects the machine, far above the memory check


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    os.nice(10)


def run_measured(args: list[str], fork: bool = True) -> dict:
    """One `evstream` run: exit status, stdout, stderr, wall seconds, CPU seconds and peak RSS in MB
    (os.wait4 of that one child). ``fork``: the child is forked from this process, which has imported
    evstream and compiled its kernels, and runs ``evstream.cli.main(args)`` (the command without its ~1.5 s
    of start-up); otherwise ``python -m evstream`` is started afresh."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        if fork:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 1
                try:
                    os.dup2(so.fileno(), 1)
                    os.dup2(se.fileno(), 2)
                    _limit()
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    from evstream.cli import main as cli_main

                    code = cli_main(args)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:  # noqa: BLE001 -- an escaped exception is a finding: print it
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
        else:
            pid = subprocess.Popen([sys.executable, "-m", "evstream", *args], stdout=so, stderr=se,
                                   preexec_fn=_limit, env={**os.environ, "RUST_BACKTRACE": "0"}).pid
        killed = False
        deadline = t0 + HARD_KILL_S
        while True:
            done, status, ru = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                killed = True
                done, status, ru = os.wait4(pid, 0)
                break
            time.sleep(0.002)
        so.seek(0)
        se.seek(0)
        return {"rc": os.waitstatus_to_exitcode(status), "out": so.read().decode(errors="replace"),
                "err": se.read().decode(errors="replace"), "wall_s": time.monotonic() - t0,
                "cpu_s": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024, "killed": killed}


def check(r: dict, size: int, limit_s: float, cmd: str) -> list[str]:
    """What is wrong with one run (empty: it passed)."""
    bad = []
    if r["cpu_s"] > limit_s:
        bad.append(f"slow: {r['cpu_s']:.1f} s CPU")
    if r["killed"]:
        bad.append(f"no end within {HARD_KILL_S} s")
    if r["rc"] not in (0, 2):
        bad.append(f"exit {r['rc']}")
    lines = r["err"].strip().splitlines()
    if r["rc"] == 2 and (len(lines) != 1 or not lines[0].startswith(f"evstream {cmd}: error: ")):
        bad.append(f"stderr {len(lines)} lines")
    if r["rc"] == 0 and lines:
        bad.append("stderr on success")
    if "Traceback" in r["err"]:
        bad.append("traceback")
    if r["rss_mb"] > 4 * size / 2**20 + 300:
        bad.append(f"memory {r['rss_mb']:.0f} MB")
    return bad


def fuzz_format(fmt: str, data_dir: Path, n: int, limit_s: float, work: Path, log, exec_every: int = 0) -> dict:
    data = seed_bytes(fmt, data_dir)
    seed = work / f"seed{SUFFIX[fmt]}"
    seed.write_bytes(data)
    whole = read_events(seed).events
    runs, failures = 0, []
    stats = {"ok": 0, "error": 0, "max_wall_s": 0.0, "max_cpu_s": 0.0, "max_rss_mb": 0.0, "truncations": 0,
             "truncations_exact": 0}
    run_measured(["info", str(seed)], fork=False)  # compiles the numba kernels into their cache if needed
    read_events(seed)  # and loads them here, before any fork
    stats["exec_runs"] = 0
    for i in range(n):
        kind, damaged, cut = variant(data, i)
        f = work / f"v{SUFFIX[fmt]}"
        f.write_bytes(damaged)
        out = work / "out.npz"
        out.unlink(missing_ok=True)
        fork = not (exec_every and i % exec_every == 0)
        stats["exec_runs"] += 0 if fork else 2
        info = run_measured(["info", str(f), "--json"], fork)
        conv = run_measured(["convert", str(f), str(out)], fork)
        problems = []
        for cmd, r in (("info", info), ("convert", conv)):
            runs += 1
            stats["ok" if r["rc"] == 0 else "error"] += 1
            stats["max_wall_s"] = max(stats["max_wall_s"], r["wall_s"])
            stats["max_cpu_s"] = max(stats["max_cpu_s"], r["cpu_s"])
            stats["max_rss_mb"] = max(stats["max_rss_mb"], r["rss_mb"])
            problems += [f"{cmd}: {p}" for p in check(r, len(damaged), limit_s, cmd)]
        got = None
        try:
            got = read_events(out).events if out.exists() else None
        except Exception as exc:  # noqa: BLE001 -- any failure to read back is a finding
            problems.append(f"convert output unreadable: {exc}")
        if conv["rc"] == 0 and info["rc"] == 0 and got is not None:
            if len(got) != json.loads(info["out"])["events"]:
                problems.append("convert and info disagree on the count")
        if conv["rc"] == 0 and got is None:
            problems.append("exit 0 without output")
        if kind == "truncate":
            stats["truncations"] += 1
            if got is None or np.array_equal(got, whole[:len(got)]):
                stats["truncations_exact"] += 1
            else:
                problems.append("truncation: events differ from the file's first events")
        if problems:
            failures.append({"index": i, "kind": kind, "problems": problems, "info_err": info["err"][-300:],
                             "convert_err": conv["err"][-300:]})
            log(f"  {fmt} #{i} {kind}: {problems}")
    f.unlink(missing_ok=True)
    return {"format": fmt, "seed_bytes": len(data), "seed_events": int(len(whole)), "variants": n, "runs": runs,
            "variants_failed": len(failures), **stats, "failures": failures}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(res: dict) -> str:
    rows = ["| format | seed file (bytes, events) | variants | runs | exit 0 | exit 2 | failed variants | "
            "most CPU in a run | slowest run (wall) | largest peak RSS | truncations exact |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["formats"]:
        rows.append(f"| {r['format']} | {r['seed_bytes']:,} B, {r['seed_events']:,} ev | {r['variants']} | {r['runs']} "
                    f"| {r['ok']} | {r['error']} | {r['variants_failed']} | {r['max_cpu_s']:.2f} s | "
                    f"{r['max_wall_s']:.2f} s | {r['max_rss_mb']:.0f} MB | {r['truncations_exact']} of "
                    f"{r['truncations']} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=400)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--limit-s", type=float, default=5.0)
    ap.add_argument("--exec-every", type=int, default=20,
                    help="every Nth variant runs as a fresh `python -m evstream` (start-up included); the others "
                         "in a child forked from this warm process (0: all forked)")
    ap.add_argument("--data", default=os.environ.get("EVSTREAM_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--json", default=None)
    ap.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    load0 = os.getloadavg()
    t0 = time.time()
    res = {"cpu": cpu_name(), "cores": os.cpu_count(), "load_avg_start": load0, "limit_s": args.limit_s,
           "exec_every": args.exec_every, "formats": []}
    with tempfile.TemporaryDirectory(prefix="evstream-fuzz-") as work:
        for fmt in args.formats.split(","):
            print(f"{fmt}: {args.variants} variants", flush=True)
            r = fuzz_format(fmt, Path(args.data), args.variants, args.limit_s, Path(work), print, args.exec_every)
            res["formats"].append(r)
            print(f"{fmt}: {r['variants_failed']} variants failed, slowest {r['max_wall_s']:.2f} s, "
                  f"peak {r['max_rss_mb']:.0f} MB", flush=True)
            if args.json:  # after each format, so a long run can be followed
                Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    res["load_avg_end"] = os.getloadavg()
    res["elapsed_s"] = time.time() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    text = table(res)
    print(text)
    if args.results:
        write_results(res, text)
    return 1 if any(r["variants_failed"] for r in res["formats"]) else 0


def write_results(res: dict, text: str) -> None:
    path = REPO / "benchmarks" / "RESULTS.md"
    start, end = "<!-- fuzz_readers:start -->", "<!-- fuzz_readers:end -->"
    n = sum(r["variants"] for r in res["formats"])
    failed = sum(r["variants_failed"] for r in res["formats"])
    block = (f"{start}\n## Damaged files: `evstream info` and `convert` (benchmarks/fuzz_readers.py)\n\n"
             f"{n:,} damaged variants ({res['formats'][0]['variants']} per format; tests/fuzz_corpus.py) x 2 commands, "
             f"each in its own process, one at a time (forked from the warm harness, so the ~1.5 s start-up of "
             f"the command is not in the times; every {res['exec_every']}th variant as a fresh `python -m "
             f"evstream`, start-up included), on {res['cpu']} ({res['cores']} cores, load average "
             f"{res['load_avg_start'][0]:.1f} at the start, {res['load_avg_end'][0]:.1f} at the end; "
             f"{res['elapsed_s'] / 60:.0f} min). Pass = exit 0, or exit 2 with one line on stderr; at most "
             f"{res['limit_s']:g} s of CPU time (wall time, shown, also counts the other jobs on the shared cores; "
             f"none may run past {HARD_KILL_S} s); peak RSS <= 4 x file size + "
             f"300 MB; the converted file readable, with info's count, and for truncations exactly the "
             f"events before the cut. **{n - failed:,} of {n:,} variants passed.**\n\n{text}\n{end}\n")
    old = path.read_text() if path.exists() else ""
    if start in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
