"""Many stream clients in one process, on one epoll loop: the fan-out benchmarks' instrument.

    python bench/clients.py sse  PORT N MARKER        # N `GET /api/v1/stream` clients
    python bench/clients.py mqtt PORT N TAG MARKER    # N MQTT 3.1.1 subscribers (QoS 0)

Each process connects its N sockets (a wave of `WAVE` at a time, each through its handshake: the
stream's `: connected` comment, or CONNACK and SUBACK), prints `READY`, then times, per socket,
when MARKER first arrives (`time.monotonic()`, which every process on the machine shares), prints
the times as one JSON list, and waits for a line on stdin before hanging up.

Why not asyncio: the clients share the machine's CPUs with the server they measure. An asyncio
client spends some 30-50 us of Python per socket on a message (transport, protocol, stream
reader, future, task step); this loop spends a few (one `recv`, one substring test), so more of
the CPU is left to the server and the figure is the server's more than the clients'. MQTT and SSE
clients are the same loop with a different handshake, so a ratio between them compares servers.
After its marker a socket is no longer read: the rest of the message waits in the kernel.
"""

from __future__ import annotations

import json
import resource
import select
import socket
import sys
import time
from collections.abc import Callable

WAVE = 200  # sockets handshaking at once: the servers' listen backlogs are finite
DEADLINE_S = 120.0

Step = tuple[bytes, Callable[[bytes], int]]  # what to send, and how many bytes of the answer
                                             # complete it (0 while incomplete; raises if refused)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _sse_steps() -> list[Step]:
    request = (b"GET /api/v1/stream HTTP/1.1\r\nHost: bench\r\n"
               b"Accept: text/event-stream\r\n\r\n")

    def connected(buf: bytes) -> int:
        if not buf.startswith(b"HTTP/1.1 200"):
            if b"\r\n" in buf:
                raise ConnectionError(f"stream refused: {buf[:80]!r}")
            return 0
        at = buf.find(b": connected\n\n")
        return 0 if at < 0 else at + len(b": connected\n\n")

    return [(request, connected)]


TOPIC = "tocsin/bench/alerts"


def _mqtt_packet(kind: int, body: bytes) -> bytes:
    """An MQTT control packet: fixed header with the variable-length remaining length."""
    out = bytearray([kind])
    n = len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, keep-alive 0 (no pings needed)."""
    return _mqtt_packet(0x10, _mqtt_string("MQTT") + bytes([4, 0x02, 0, 0])
                        + _mqtt_string(client_id))


def subscribe_packet(topic: str) -> bytes:
    return _mqtt_packet(0x82, (1).to_bytes(2, "big") + _mqtt_string(topic) + bytes([0]))


def publish_packet(topic: str, payload: bytes) -> bytes:
    return _mqtt_packet(0x30, _mqtt_string(topic) + payload)


def _mqtt_steps(name: str, topic: str) -> list[Step]:
    connect = connect_packet(name)
    subscribe = subscribe_packet(topic)

    def connack(buf: bytes) -> int:
        if len(buf) < 4:
            return 0
        if buf[0] != 0x20 or buf[3] != 0:
            raise ConnectionError(f"CONNACK refused: {buf[:4]!r}")
        return 4

    def suback(buf: bytes) -> int:
        if len(buf) < 5:
            return 0
        if buf[0] != 0x90 or buf[4] == 0x80:
            raise ConnectionError(f"SUBACK refused: {buf[:5]!r}")
        return 5

    return [(connect, connack), (subscribe, suback)]


def connect_all(port: int, n: int, steps_of: Callable[[int], list[Step]]
                ) -> dict[int, socket.socket]:
    """`n` sockets through their handshakes, a wave at a time; by file descriptor."""
    ready: dict[int, socket.socket] = {}
    ep = select.epoll()
    try:
        for start in range(0, n, WAVE):
            wave: dict[int, tuple[socket.socket, list[Step], bytes]] = {}
            for i in range(start, min(n, start + WAVE)):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                steps = steps_of(i)
                sock.sendall(steps[0][0])
                wave[sock.fileno()] = (sock, steps, b"")
                ep.register(sock.fileno(), select.EPOLLIN)
            deadline = time.monotonic() + DEADLINE_S
            while wave:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(wave)} handshakes unfinished")
                for fd, _ in ep.poll(1.0):
                    sock, steps, buf = wave[fd]
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed during the handshake")
                    buf += data
                    used = steps[0][1](buf)
                    while used:
                        buf, steps = buf[used:], steps[1:]
                        if not steps:
                            break
                        sock.sendall(steps[0][0])
                        used = steps[0][1](buf)
                    if steps:
                        wave[fd] = (sock, steps, buf)
                    else:
                        ep.unregister(fd)
                        del wave[fd]
                        ready[fd] = sock
    finally:
        ep.close()
    return ready


def time_marker(socks: dict[int, socket.socket], marker: bytes) -> list[float]:
    """When `marker` first arrived on each socket (sockets are not read after it)."""
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    waiting = dict(socks)
    tails = dict.fromkeys(socks, b"")
    keep = len(marker) - 1
    times: list[float] = []
    deadline = time.monotonic() + DEADLINE_S
    poll, now = ep.poll, time.monotonic
    while waiting and now() < deadline:
        for fd, _ in poll(1.0):
            sock = waiting.get(fd)
            if sock is None:
                continue
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed before the marker arrived")
            buf = tails[fd] + data
            if marker in buf:
                times.append(now())
                ep.unregister(fd)
                del waiting[fd]
            else:
                tails[fd] = buf[-keep:] if keep else b""
    ep.close()
    return times


def main(argv: list[str]) -> int:
    _raise_nofile()
    kind, port, n = argv[0], int(argv[1]), int(argv[2])
    if kind == "sse":
        marker = argv[3].encode()
        steps = _sse_steps()
        socks = connect_all(port, n, lambda _i: steps)
    elif kind == "mqtt":
        tag, marker = argv[3], argv[4].encode()
        socks = connect_all(port, n, lambda i: _mqtt_steps(f"{tag}-{i}", TOPIC))
    else:
        raise SystemExit(f"unknown client kind {kind!r}")
    print("READY", flush=True)
    print(json.dumps(time_marker(socks, marker)), flush=True)
    sys.stdin.readline()  # the parent says when to hang up
    for sock in socks.values():
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
