"""The DV network client trusts no server, and `serve` stays bounded: hostile or vanishing servers give one
StreamError line quickly with little memory; a client that never reads costs the server a bounded queue;
clients beyond the limit are told; our server and dv-processing's client/server understand each other."""

from __future__ import annotations

import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import data_file
from evstream.errors import StreamError
from evstream.readers import dvpackets, read_events
from evstream.serve import EventServer
from evstream.sources import NetworkSource

QUICK = {"retry_s": 0.05, "max_retry_s": 0.1, "give_up_s": 0.5, "header_s": 1.0, "stall_s": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """A loopback server that sends ``payload`` (bytes, or a callable taking the socket) to each client."""

    def __init__(self, payload, hold_s: float = 5.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.payload, self.hold_s = payload, hold_s
        self.clients = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(10)
        try:
            while True:
                conn, _ = self.sock.accept()
                self.clients += 1
                threading.Thread(target=self._one, args=(conn,), daemon=True).start()
        except OSError:
            pass

    def _one(self, conn):
        try:
            if callable(self.payload):
                self.payload(conn)
            else:
                conn.sendall(self.payload)
            time.sleep(self.hold_s)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread: the port is gone now
        except OSError:
            pass
        self.sock.close()


def header_bytes(width=34, height=34) -> bytes:
    h = dvpackets.build_io_header(dvpackets.events_xml(width, height, "fake"))
    return struct.pack("<i", len(h)) + h


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("payload,match", [
    (struct.pack("<i", 0x7FFFFFF0) + b"x" * 100, "declared header size"),
    (bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8)), "not a DV event stream"),
    (struct.pack("<i", 64) + b"\x01" * 64, "not a DV event stream"),
    (b"", "closed the connection before sending a stream header"),
])
def test_hostile_header(payload, match):
    srv = FakeServer(payload, hold_s=2.0 if payload else 0.0)  # b"": accept, then close at once
    rss0 = _rss_mb()
    t0 = time.monotonic()
    try:
        with pytest.raises(StreamError, match=match) as info:
            NetworkSource("127.0.0.1", srv.port, **QUICK)
    finally:
        srv.close()
    assert time.monotonic() - t0 < 5
    assert "\n" not in str(info.value) and f"127.0.0.1:{srv.port}" in str(info.value)
    assert _rss_mb() - rss0 < 100


def test_server_that_never_sends():
    srv = FakeServer(b"", hold_s=10.0)
    srv.payload = lambda conn: None  # accept, then silence
    t0 = time.monotonic()
    try:
        with pytest.raises(StreamError, match="no data for 1 s while waiting for the stream header"):
            NetworkSource("127.0.0.1", srv.port, **QUICK)
    finally:
        srv.close()
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("size", [0x7FFFFFF0, -3])
def test_huge_or_negative_packet_after_a_valid_header(size):
    srv = FakeServer(header_bytes() + struct.pack("<ii", 0, size) + b"\0" * 1000)
    rss0 = _rss_mb()
    t0 = time.monotonic()
    try:
        src = NetworkSource("127.0.0.1", srv.port, **QUICK)
        assert src.sensor_size == (34, 34)
        with pytest.raises(StreamError, match=f"declared size {size}"):
            next(iter(src))
    finally:
        srv.close()
    assert time.monotonic() - t0 < 5 and _rss_mb() - rss0 < 100


def test_garbage_packet_body():
    body = b"\x07" * 64  # not an event FlatBuffer
    srv = FakeServer(header_bytes() + struct.pack("<ii", 0, len(body)) + body)
    try:
        src = NetworkSource("127.0.0.1", srv.port, **QUICK)
        with pytest.raises(StreamError, match="bad packet from the server"):
            next(iter(src))
    finally:
        srv.close()


def test_stream_gone_for_good_is_an_error():
    ev = read_events(data_file("tonic_samples/sample_nmnist.bin")).events
    srv = FakeServer(header_bytes() + dvpackets.event_packet(ev[:1000]), hold_s=0.2)
    statuses = []
    got = []
    t0 = time.monotonic()
    src = NetworkSource("127.0.0.1", srv.port, on_status=statuses.append, **QUICK)
    srv.close()  # the server goes away after this client's connection, for good
    with pytest.raises(StreamError, match="did not come back within 0.5 s") as info:
        for c in src:
            got.append(c.events)
    assert "\n" not in str(info.value)
    assert time.monotonic() - t0 < 5
    np.testing.assert_array_equal(np.concatenate(got), ev[:1000])
    assert any("gave up" in s for s in statuses)


def test_server_queue_bounded_for_a_client_that_never_reads():
    ev = read_events(data_file("tonic_samples/sample.aedat4")).events
    port = free_port()
    with EventServer("127.0.0.1", port, (320, 240), max_queued_bytes=1 << 20) as srv:
        lazy = socket.create_connection(("127.0.0.1", port))
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader = NetworkSource("127.0.0.1", port, **QUICK)
        got = []

        def read_all():
            try:
                for c in reader:
                    got.append(c.events)
            except StreamError:
                pass

        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        t_end = time.monotonic() + 5
        while srv.client_count < 2 and time.monotonic() < t_end:
            time.sleep(0.01)
        sent = 0
        for k in range(60):  # 60 packets of 320 kB: far more than the lazy client's 1 MB queue and socket buffers
            part = ev[(k % 5) * 20_000:(k % 5 + 1) * 20_000]
            srv.publish(part)
            sent += len(part)
            assert srv.queued_bytes <= (1 << 20) + len(part) * 16 + 100  # only the lazy client's queue is left
            while sum(map(len, got)) < sent and time.monotonic() < t_end + 30:
                time.sleep(0.002)  # the reading client keeps up
        assert srv.dropped > 0
        reader_total = sum(map(len, got))
        lazy.close()
    reader.close()
    assert reader_total == sent  # the reading client lost nothing


def test_client_beyond_the_limit_is_told():
    port = free_port()
    logs = []
    with EventServer("127.0.0.1", port, (34, 34), max_clients=2, log=logs.append) as srv:
        a = NetworkSource("127.0.0.1", port, **QUICK)
        b = NetworkSource("127.0.0.1", port, **QUICK)
        with pytest.raises(StreamError, match="may be full"):
            NetworkSource("127.0.0.1", port, **QUICK)
        assert srv.turned_away == 1 and any("server full" in s for s in logs)
        a.close()
        b.close()


DV_CLIENT = """
import sys, time, numpy as np, dv_processing as dv
port, n_want, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t_end = time.monotonic() + 20
reader = None
while reader is None:
    try:
        reader = dv.io.NetworkReader("127.0.0.1", port)
    except RuntimeError:
        if time.monotonic() > t_end:
            sys.exit("no connection")
        time.sleep(0.1)
res = tuple(reader.getEventResolution())
got, n = [], 0
while n < n_want and time.monotonic() < t_end:
    b = reader.getNextEventBatch()
    if b is None:
        time.sleep(0.002)
        continue
    got.append(b.numpy().copy())
    n += len(got[-1])
a = np.concatenate(got)
np.savez(out, t=a["timestamp"], x=a["x"], y=a["y"], p=a["polarity"].astype(np.int8), w=res[0], h=res[1])
"""


def test_dv_processing_reads_our_server(tmp_path):
    # dv-processing's reader blocks in C++ where no Python timeout reaches it: it runs in a child process
    path = data_file("tonic_samples/sample.aedat4")
    ref = read_events(path).events
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evstream", "serve", str(path), "--port", str(port), "--speed",
                             "0", "--wait", "20", "--linger", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out = tmp_path / "got.npz"
        r = subprocess.run([sys.executable, "-c", DV_CLIENT, str(port), str(len(ref)), str(out)],
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stderr[-2000:]
        a = np.load(out)
        assert (int(a["w"]), int(a["h"])) == (320, 240)
        np.testing.assert_array_equal(a["t"], ref["t"])
        np.testing.assert_array_equal(a["x"], ref["x"])
        np.testing.assert_array_equal(a["y"], ref["y"])
        np.testing.assert_array_equal(a["p"], ref["p"])
        assert proc.wait(timeout=20) == 0  # the last client left: serve ends without waiting out --linger
    finally:
        proc.kill()


def test_we_read_dv_processing_server():
    import dv_processing as dv

    from evstream.writers import to_dv_store

    ev = read_events(data_file("tonic_samples/sample_nmnist.bin")).events
    port = free_port()
    writer = dv.io.NetworkWriter("127.0.0.1", port, dv.io.Stream.EventStream(0, "events", "dvcam", (34, 34)))
    src = NetworkSource("127.0.0.1", port, **QUICK)
    assert src.sensor_size == (34, 34) and src.meta["camera"] == "dvcam"
    t_end = time.monotonic() + 2
    while writer.getClientCount() == 0 and time.monotonic() < t_end:
        time.sleep(0.01)
    for s in range(0, len(ev), 1000):
        writer.writeEvents(to_dv_store(ev[s:s + 1000]))
    got = []
    for c in src:
        got.append(c.events)
        if sum(map(len, got)) >= len(ev):
            break
    src.close()
    np.testing.assert_array_equal(np.concatenate(got), ev)


def test_ctrl_c_stops_serve_after_clients_were_turned_away():
    path = data_file("tonic_samples/sample_nmnist.bin")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "evstream", "serve", str(path), "--port", str(port), "--loop",
                             "--wait", "0", "--max-clients", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        t_end = time.monotonic() + 30
        first = None
        while first is None:
            try:
                first = NetworkSource("127.0.0.1", port, **QUICK)
            except StreamError:
                assert time.monotonic() < t_end and proc.poll() is None
                time.sleep(0.1)
        for _ in range(3):
            with pytest.raises(StreamError, match="may be full"):
                NetworkSource("127.0.0.1", port, **QUICK)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
        first.close()
        assert rc == 130, proc.stderr.read()
        assert "interrupted" in proc.stderr.read()
    finally:
        proc.kill()


def test_serve_binds_loopback_by_default():
    port = free_port()
    with EventServer("127.0.0.1", port, (34, 34)) as srv:
        assert srv._listener.getsockname()[0] == "127.0.0.1"
