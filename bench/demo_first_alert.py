"""Seconds from `tocsin serve --demo` starting to its first alert, as a user sees it.

    python bench/demo_first_alert.py [DEMO ARGS...]     # e.g. night-wave, or --speed 10

Starts a real server on a free port with an empty data directory, polls
/api/v1/alerts/active every 0.1 s and prints the time from process start to the server being
ready and to the first active alert. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> None:
    port = _port()
    with tempfile.TemporaryDirectory() as data:
        began = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "serve", "--port", str(port), "--data-dir", data,
             "--demo", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = None
        try:
            while time.monotonic() - began < 300:
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/api/v1/alerts/active", timeout=2) as r:
                        body = json.load(r)
                except OSError:
                    time.sleep(0.1)
                    continue
                if ready is None:
                    ready = time.monotonic() - began
                if body.get("alerts"):
                    first = time.monotonic() - began
                    print(f"demo {' '.join(argv) or '(default)'}: ready after {ready:.1f} s, "
                          f"first alert after {first:.1f} s ({first - ready:.1f} s after ready)")
                    return
                time.sleep(0.1)
            print("no alert within 300 s")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
