"""`evstream serve` -> NetworkSource on 127.0.0.1: every event in order; reconnection when the server
comes back; a stream gone for good ends in an error; clear errors for unreachable hosts and absent cameras."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import data_file
from evstream.errors import StreamError
from evstream.readers import read_events
from evstream.sources import NetworkSource, open_source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(path, port, *extra):
    return subprocess.Popen([sys.executable, "-m", "evstream", "serve", str(path), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def connect(port, timeout=20.0, **opts):
    t_end = time.monotonic() + timeout
    while True:
        try:
            return NetworkSource("127.0.0.1", port, **opts)
        except StreamError:
            if time.monotonic() > t_end:
                raise
            time.sleep(0.1)


def collect(src, limit_s=30.0):
    """Every event until the stream ends -- which, for a network stream, is an error once the server has
    not come back within ``give_up_s``."""
    got, t_end = [], time.monotonic() + limit_s
    with pytest.raises(StreamError, match="did not come back"):
        for c in src:
            got.append(c.events)
            assert time.monotonic() < t_end
    return np.concatenate(got) if got else np.zeros(0)


def test_serve_to_network_source_every_event_in_order():
    path = data_file("tonic_samples/sample.aedat4")
    ref = read_events(path).events
    port = free_port()
    proc = start_serve(path, port, "--speed", "4")
    try:
        src = connect(port, give_up_s=0.5, retry_s=0.1)
        assert src.sensor_size == (320, 240)
        got = collect(src)
        assert len(got) == len(ref)
        np.testing.assert_array_equal(got, ref)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()


def test_reconnect_when_server_returns():
    path = data_file("dvs128_aedat2/alex_walking_again.aedat")  # 6.9 s at real time
    port = free_port()
    first = start_serve(path, port, "--speed", "1")
    statuses = []
    second = None
    try:
        src = connect(port, retry_s=0.1, max_retry_s=0.5, give_up_s=10.0, on_status=statuses.append)
        it = iter(src)
        before = [next(it).events for _ in range(3)]
        first.kill()
        first.wait(timeout=10)
        time.sleep(0.5)
        second = start_serve(path, port, "--speed", "8")
        after = []
        t_end = time.monotonic() + 30
        for c in it:
            after.append(c.events)
            if src.reconnects and sum(map(len, after)) > 1000 or time.monotonic() > t_end:
                break
        assert src.reconnects >= 1
        assert any("dropped" in s for s in statuses) and any("reconnected" in s for s in statuses)
        assert sum(map(len, before)) > 0 and sum(map(len, after)) > 1000
        src.close()
    finally:
        first.kill()
        if second:
            second.kill()


def test_unreachable_host_one_line():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(StreamError) as info:
        open_source(f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert f"tcp://127.0.0.1:{port}" in msg and "\n" not in msg and "cannot connect" in msg
    assert ".hpp" not in msg and ".cpp" not in msg and "vcpkg" not in msg  # no library internals


def test_bad_spec():
    from evstream.errors import EvstreamError

    with pytest.raises(EvstreamError, match="tcp://HOST:PORT"):
        open_source("tcp://nohostport")


def test_no_camera_message():
    with pytest.raises(StreamError) as info:
        open_source("camera")
    assert str(info.value) == "no DVS camera found"


def test_cli_run_unreachable_exits_2():
    port = free_port()
    # serve a file nobody connects to: gives up after --wait with one line, exit 2
    path = data_file("tonic_samples/sample_nmnist.bin")
    r = subprocess.run([sys.executable, "-m", "evstream", "serve", str(path), "--port", str(port), "--wait", "0.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no client connected" in r.stderr and "Traceback" not in r.stderr
