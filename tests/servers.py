"""`tocsin` as real processes for the tests: free ports, the CLI, `tocsin serve` started, polled
until `/readyz` answers, and stopped.

Everything polls with deadlines; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "create_key", "eventually", "free_port", "kill", "run_cli", "serving", "start_serve", "stop",
    "wait_ready",
]


MQTT_BROKER = "mqtt://127.0.0.1:1883"


def mqtt_broker() -> str:
    """The real Mosquitto's URL; skips loudly when it cannot be reached."""
    import pytest  # only the tests that need a broker pull pytest in here

    try:
        socket.create_connection(("127.0.0.1", 1883), 2).close()
    except OSError as exc:
        pytest.skip(f"SKIPPED LOUDLY: no MQTT broker at 127.0.0.1:1883 ({exc}); start it with "
                    "`mosquitto -d -c /etc/mosquitto/mosquitto.conf`")
    return MQTT_BROKER


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0,
               every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def run_cli(*args: str, timeout: float = 300.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m tocsin ARGS`, output captured."""
    return subprocess.run([sys.executable, "-m", "tocsin", *args], capture_output=True,
                          text=True, timeout=timeout, check=check)


def create_key(role: str, *where: str, name: str | None = None) -> str:
    """A new key from `tocsin keys create --role ROLE WHERE…` (`--data-dir DIR` or
    `--store URL`, optionally `--name`)."""
    named = ("--name", name) if name is not None else ()
    done = run_cli("keys", "create", *where, "--role", role, *named)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def start_serve(args: list[str], log_path: Path, *, env: Mapping[str, str] | None = None,
                append: bool = False) -> subprocess.Popen[bytes]:
    """`python -m tocsin serve ARGS`, unbuffered, its output (both streams) in `log_path`."""
    with log_path.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve", *args], stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


@contextlib.contextmanager
def serving(data_dir: Path, log_path: Path, *args: str) -> Iterator[str]:
    """`tocsin serve --data-dir DATA_DIR ARGS` on a free port, ready; its base URL. Stopped
    (SIGTERM) when the block ends."""
    port = free_port()
    proc = start_serve(["--data-dir", str(data_dir), "--port", str(port), *args], log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, lambda: log_path.read_text(errors="replace"))
        yield base
    finally:
        stop(proc)


def wait_ready(proc: subprocess.Popen[bytes], base: str, output: Callable[[], str], *,
               what: str = "tocsin serve", timeout: float = 60.0,
               http_timeout: float = 1.0) -> None:
    """Poll `base/readyz` until it answers `200`; fail (with `output()`) if `proc` exits."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n" + output())
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(base + "/readyz", timeout=http_timeout).status_code == 200
        return False

    eventually(ready, f"{what} to be ready", timeout)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM and wait, SIGKILL after `timeout` s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)
    return proc.returncode


def kill(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL (no shutdown, no flush, no goodbye) and wait."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout)
