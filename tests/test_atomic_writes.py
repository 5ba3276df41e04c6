"""Files appear whole or not at all: `convert` interrupted by SIGINT, SIGTERM or SIGKILL leaves an existing
output as it was (and no spill), refuses IN == OUT, and evstream.fileio's helpers clean up on any exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evstream.errors import EvstreamError
from evstream.fileio import TMP_TAG, atomic_path, atomic_write, sweep_stale
from evstream.writers import open_writer


def synthetic_npz(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, t=np.arange(n, dtype=np.int64), x=rng.integers(0, 34, n, dtype=np.uint16),
             y=rng.integers(0, 34, n, dtype=np.uint16), p=rng.integers(0, 2, n, dtype=np.int8),
             width=np.int64(34), height=np.int64(34))


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_TAG in p.name)


@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_interrupted_convert_keeps_the_old_output(tmp_path, sig, rc):
    src = tmp_path / "big.npz"
    synthetic_npz(src, 6_000_000)  # seconds of dv-processing's per-event EventStore building
    out = tmp_path / "out.aedat4"
    small = tmp_path / "small.npz"
    synthetic_npz(small, 100)
    assert subprocess.run([sys.executable, "-m", "evstream", "convert", str(small), str(out)],
                          capture_output=True, timeout=120).returncode == 0
    before = out.read_bytes()
    spill_before = set(os.listdir(tmp_path))
    p = subprocess.Popen([sys.executable, "-m", "evstream", "convert", str(src), str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_end = time.monotonic() + 120
    while not temps(tmp_path):  # it is writing
        assert p.poll() is None and time.monotonic() < t_end, p.stderr.read() if p.poll() is not None else ""
        time.sleep(0.01)
    p.send_signal(sig)  # while it writes: 6 M events take seconds, the temporary file is there from the start
    # SIGINT is KeyboardInterrupt (exit 130) unless it lands inside native code that then returns into
    # interpreter shutdown, where Python ends by re-raising the signal (-2): either way the old output stays
    assert p.wait(timeout=60) in ((rc, -2) if sig == signal.SIGINT else (rc,))
    err = p.stderr.read()
    assert "Traceback" not in err
    assert out.read_bytes() == before  # the old output, untouched
    left = temps(tmp_path)
    if sig == signal.SIGKILL:
        assert len(left) == 1  # nothing can clean up after SIGKILL: the next write of OUT does
        r = subprocess.run([sys.executable, "-m", "evstream", "convert", str(small), str(out)],
                           capture_output=True, timeout=120)
        assert r.returncode == 0
        assert temps(tmp_path) == []
    else:
        assert left == [] and err.strip().endswith(("interrupted", "terminated"))
    assert set(os.listdir(tmp_path)) == spill_before  # no spill, no temporary


def spilling(pid: int, where: str) -> bool:
    """Whether process ``pid`` holds an unlinked file under ``where`` open (the npz writer's spill); a file
    descriptor that closes while we look is skipped, not an error."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return False
    for f in fds:
        try:
            target = os.readlink(f)
        except OSError:
            continue
        if where in target and "(deleted)" in target:
            return True
    return False


def test_interrupted_npz_leaves_no_spill(tmp_path):
    """The .npz writer's spill files are anonymous: even SIGKILL in the middle leaves none behind."""
    src = tmp_path / "big.npz"
    synthetic_npz(src, 4_000_000)
    tmpdir = Path(os.environ.get("TMPDIR", "/tmp"))
    old_spill = {q.name for q in tmpdir.glob("evstream-npz-*")}
    out = tmp_path / "out.npz"
    p = subprocess.Popen([sys.executable, "-m", "evstream", "convert", str(src), str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_end = time.monotonic() + 120
    while not spilling(p.pid, str(tmp_path)):
        assert p.poll() is None and time.monotonic() < t_end
        time.sleep(0.01)
    p.kill()
    p.wait(timeout=60)
    assert sorted(os.listdir(tmp_path)) == ["big.npz"]  # no output, no temporary, no spill
    assert {q.name for q in tmpdir.glob("evstream-npz-*")} == old_spill


def test_convert_refuses_same_input_and_output(tmp_path, capsys):
    from evstream.cli import main

    src = tmp_path / "a.npz"
    synthetic_npz(src, 1000)
    data = src.read_bytes()
    os.link(src, tmp_path / "b.npz")
    for out in (src, tmp_path / "b.npz", tmp_path / "." / "a.npz"):
        assert main(["convert", str(src), str(out)]) == 2
        err = capsys.readouterr().err
        assert "is both input and output" in err and len(err.strip().splitlines()) == 1
    assert src.read_bytes() == data


def test_writer_exception_leaves_no_file(tmp_path):
    out = tmp_path / "x.npz"
    out.write_bytes(b"old")
    with pytest.raises(EvstreamError, match="outside"):
        with open_writer(out, (10, 10)) as w:
            w.write(np.array([(0, 1, 1, 1)], w_dtype()))
            w.write(np.array([(1, 50, 1, 1)], w_dtype()))  # outside the 10x10 sensor
    assert out.read_bytes() == b"old" and temps(tmp_path) == []


def w_dtype():
    from evstream.events import EVENT_DTYPE

    return EVENT_DTYPE


def test_atomic_write_and_path(tmp_path):
    f = tmp_path / "cache.npz"
    with atomic_write(f) as fh:
        np.savez(fh, a=np.arange(3))
    assert np.load(f)["a"].tolist() == [0, 1, 2]
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(f) as fh:
            fh.write(b"half")
            raise KeyboardInterrupt
    assert np.load(f)["a"].tolist() == [0, 1, 2] and temps(tmp_path) == []
    with atomic_path(tmp_path / "out.aedat4") as tmp:
        assert tmp.suffix == ".aedat4" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "out.aedat4").read_bytes() == b"x"
    with pytest.raises(EvstreamError, match="folder does not exist"):
        with atomic_path(tmp_path / "no" / "x.npz"):
            pass


def test_sweep_removes_only_dead_writers_temporaries(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out{TMP_TAG}{dead.pid}-abcdef.npz"
    live = tmp_path / f".out{TMP_TAG}{os.getpid()}-abcdef.npz"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    assert sweep_stale(tmp_path / "out.npz") == 1
    assert not stale.exists() and live.exists()


def test_full_disk_is_one_line(tmp_path, monkeypatch):
    """ENOSPC while spilling or while completing the file: one EvstreamError line, no file, no temporary."""
    from evstream.events import EVENT_DTYPE

    ev = np.zeros(10, EVENT_DTYPE)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    out = tmp_path / "x.npz"
    w = open_writer(out, (10, 10))
    w.write(ev)
    monkeypatch.setattr(np.lib.format, "write_array", full)
    with pytest.raises(EvstreamError, match="No space left on device"):
        w.close()
    monkeypatch.undo()
    w = open_writer(out, (10, 10))
    monkeypatch.setattr(w._files["t"], "write", full)
    with pytest.raises(EvstreamError, match="No space left on device"):
        with w:
            w.write(ev)
    assert sorted(os.listdir(tmp_path)) == []
