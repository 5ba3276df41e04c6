"""Serving a recording as a DV network event stream, so a live stream can be run and tested on one machine:
``evstream serve FILE --port N`` and, elsewhere, ``open_source("tcp://...")`` or any DV client.

The server speaks the AEDAT 4.0 network protocol (:mod:`evstream.readers.dvpackets`; uncompressed event
packets, which dv-processing's ``NetworkReader`` and DV read). It binds 127.0.0.1 unless told otherwise. By
default it waits for the first client before sending, so that client receives every event in order.

Every client has its own bounded queue (``max_queued_bytes``): a client that does not read fast enough
loses whole packets (counted per client and in :attr:`EventServer.dropped`), the server's memory stays
bounded. At most ``max_clients`` are served; later ones are closed at once and counted as turned away.
"""

from __future__ import annotations

import collections
import selectors
import socket
import struct
import threading
import time

from evstream.errors import StreamError
from evstream.readers import dvpackets
from evstream.sources import FileSource


class _Client:
    __slots__ = ("sock", "addr", "queue", "queued", "offset", "dropped", "sent")

    def __init__(self, sock, addr, header: bytes):
        self.sock, self.addr = sock, addr
        self.queue = collections.deque([header])
        self.queued = 0  # bytes of event packets waiting (the header is not counted)
        self.offset = 0  # bytes of queue[0] already sent
        self.dropped = 0
        self.sent = 0


class EventServer:
    """A DV network event stream on ``host:port``: :meth:`publish` event arrays, :meth:`close` when done.
    One background thread accepts clients and writes to them without blocking."""

    def __init__(self, host: str, port: int, sensor_size, camera: str = "evstream", max_clients: int = 10,
                 max_queued_bytes: int = 64 << 20, log=None):
        self.where = f"tcp://{host}:{port}"
        self.max_clients, self.max_queued_bytes = int(max_clients), int(max_queued_bytes)
        self.log = log or (lambda s: None)
        xml = dvpackets.events_xml(sensor_size[0], sensor_size[1], camera)
        header = dvpackets.build_io_header(xml)
        self._header = struct.pack("<i", len(header)) + header
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._listener = socket.create_server((host, int(port)), family=family, backlog=16)
        except OSError as exc:
            raise StreamError(f"cannot listen ({exc.strerror or exc})", where=self.where) from None
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, _Client] = {}
        self.clients_served = 0
        self.turned_away = 0
        self.dropped = 0  # packets not queued for a client because its queue was full
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="evstream-serve", daemon=True)
        self._thread.start()

    # --- the public side (any thread) -----------------------------------------------------------------------
    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def queued_bytes(self) -> int:
        with self._lock:
            return sum(c.queued for c in self._clients.values())

    def publish(self, events) -> None:
        """Queue one event packet for every client (dropped for a client whose queue is full)."""
        if len(events) == 0:
            return
        packet = dvpackets.event_packet(events)
        with self._lock:
            for c in self._clients.values():
                if c.queued + len(packet) > self.max_queued_bytes:
                    c.dropped += 1
                    self.dropped += 1
                else:
                    c.queue.append(packet)
                    c.queued += len(packet)
        self._wake()

    def close(self) -> None:
        """Stop the thread and close every connection (clients see the end of the stream)."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        for sock in list(self._clients):
            self._remove(sock, None)
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the thread ------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already woken / closing

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                for sock, c in self._clients.items():
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.queue else 0)
                    if self._sel.get_key(sock).events != want:
                        self._sel.modify(sock, want, c)
            for key, mask in self._sel.select(timeout=0.5):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                else:
                    self._serve(key.fileobj, key.data, mask)

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, OSError):
                return
            if len(self._clients) >= self.max_clients:
                self.turned_away += 1
                self.log(f"turned away {addr[0]}:{addr[1]}: server full ({self.max_clients} clients)")
                sock.close()  # before any header: our client reports "the server may be full"
                continue
            sock.setblocking(False)
            c = _Client(sock, addr, self._header)
            with self._lock:
                self._clients[sock] = c
            self._sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            self.clients_served += 1
            self.log(f"client {addr[0]}:{addr[1]} connected ({len(self._clients)} of {self.max_clients})")

    def _serve(self, sock, c: _Client, mask) -> None:
        if mask & selectors.EVENT_READ:  # clients send nothing in this protocol: data is discarded, EOF ends
            try:
                if not sock.recv(65536):
                    self._remove(sock, "disconnected")
                    return
            except BlockingIOError:
                pass
            except OSError as exc:
                self._remove(sock, exc.strerror or "connection error")
                return
        if mask & selectors.EVENT_WRITE:
            error = self._send(sock, c)
            if error:
                self._remove(sock, error)

    def _send(self, sock, c: _Client) -> str | None:
        """Send what the socket takes without blocking; the reason if the connection failed."""
        with self._lock:
            while c.queue:
                head = c.queue[0]
                try:
                    k = sock.send(memoryview(head)[c.offset:])
                except BlockingIOError:
                    return None
                except OSError as exc:
                    return exc.strerror or "connection error"
                c.offset += k
                if c.offset < len(head):
                    return None
                c.queue.popleft()
                c.offset = 0
                if head is not self._header:
                    c.queued -= len(head)
                    c.sent += 1
        return None

    def _remove(self, sock, reason: str | None) -> None:
        with self._lock:
            c = self._clients.pop(sock, None)
        if c is None:
            return
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        if reason is not None:
            dropped = f", {c.dropped} packets dropped (it read too slowly)" if c.dropped else ""
            self.log(f"client {c.addr[0]}:{c.addr[1]} {reason} after {c.sent} packets{dropped}")


def serve(path, port: int, host: str = "127.0.0.1", speed: float | None = 1.0, loop: bool = False,
          wait_client_s: float | None = 30.0, linger_s: float = 2.0, max_clients: int = 10,
          max_queued_bytes: int = 64 << 20, log=print) -> int:
    """Stream the recording at ``path``; returns the number of events sent. After the last event the
    connections stay open up to ``linger_s`` seconds (less when every client has left)."""
    src = FileSource(path, speed=None, loop=loop)
    w, h = src.sensor_size
    try:
        server = EventServer(host, port, (w, h), str(src.meta.get("camera") or "evstream"), max_clients,
                             max_queued_bytes, log)
    except BaseException:
        src.close()
        raise
    sent = 0
    try:
        log(f"serving {path} ({w}x{h}, {src.duration_us / 1e6:.2f} s) on tcp://{host}:{port}")
        if wait_client_s:
            t_end = time.monotonic() + wait_client_s
            while server.client_count == 0:
                if time.monotonic() > t_end:
                    raise StreamError(f"no client connected within {wait_client_s:g} s", where=f"tcp://{host}:{port}")
                time.sleep(0.01)
        src.speed = speed
        for chunk in src:
            server.publish(chunk.events)
            sent += len(chunk)
        # keep the connections open a while: dv-processing's client drops what it has not handed out yet
        # when the server goes away, so give clients time to read the rest (or to leave)
        t_end = time.monotonic() + linger_s
        while server.client_count and time.monotonic() < t_end:
            time.sleep(0.01)
    finally:
        src.close()
        server.close()
    extra = f"; {server.dropped} packets dropped for slow clients" if server.dropped else ""
    extra += f"; {server.turned_away} clients turned away (server full)" if server.turned_away else ""
    log(f"sent {sent} events{extra}")
    return sent
