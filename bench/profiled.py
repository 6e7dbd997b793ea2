"""`python -m tocsin ARGS` with instruments on the event loop: cProfile switched by signals, and
a watchdog that reports where the loop is stuck.

    python bench/profiled.py OUT serve --data-dir DIR ...

Profile: SIGUSR1 starts profiling the main thread (where uvicorn runs the event loop), SIGUSR2
stops it and writes what was profiled since the SIGUSR1 to OUT.1, then OUT.2, ... (pstats
format; read with `python -m pstats`). `bench/stream.py --profile OUT` profiles each fan-out
this way, from just before the POST until the last client has the transition. cProfile adds its
own cost to every call, so read the profile for where the time goes, not for how long it takes.

Watchdog: a thread asks the event loop to run a no-op every 50 ms; when the loop has not run it
after `STALL_MS` (200), the main thread's stack is sampled every 50 ms until it does, and each
stall is appended to OUT.stalls (its length, when, and the stacks seen, most frequent first).
Full garbage collections longer than 50 ms are written there too. `bench/hostile.py --watch
OUT` runs the server this way.
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import gc
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

STALL_MS = 200.0

profile = cProfile.Profile()
dumps = 0


def start(_sig: int, _frame: FrameType | None) -> None:
    global profile
    profile = cProfile.Profile()  # one profile per SIGUSR1 .. SIGUSR2
    profile.enable()


def stop(_sig: int, _frame: FrameType | None) -> None:
    global dumps
    profile.disable()
    dumps += 1
    profile.dump_stats(f"{sys.argv[1]}.{dumps}")


def report(line: str) -> None:
    with open(f"{sys.argv[1]}.stalls", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def watch(loop: asyncio.AbstractEventLoop) -> None:
    main = threading.main_thread().ident
    t0 = time.monotonic()
    while True:
        done = threading.Event()
        asked = time.monotonic()
        try:
            loop.call_soon_threadsafe(done.set)
        except RuntimeError:
            return  # the loop is closed
        stacks: collections.Counter[str] = collections.Counter()
        while not done.wait(0.05):
            if (time.monotonic() - asked) * 1000 < STALL_MS:
                continue
            frame = sys._current_frames().get(main or 0)
            if frame is not None:
                stacks["".join(traceback.format_stack(frame, limit=12))] += 1
        took = (time.monotonic() - asked) * 1000
        if took >= STALL_MS:
            report(f"stall {took:.0f} ms at +{asked - t0:.1f} s, {sum(stacks.values())} "
                   "samples")
            for stack, n in stacks.most_common(3):
                report(f"  {n} x\n{stack}")
        time.sleep(0.05)


def install_watchdog() -> None:
    import uvicorn

    serve = uvicorn.Server.serve

    async def watched(self: Any, sockets: Any = None) -> None:
        threading.Thread(target=watch, args=(asyncio.get_running_loop(),), daemon=True).start()
        await serve(self, sockets)

    uvicorn.Server.serve = watched  # type: ignore[method-assign]
    started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[2] = time.monotonic()
        elif 2 in started:
            took = (time.monotonic() - started.pop(2)) * 1000
            if took > 50:
                report(f"gc gen 2 {took:.0f} ms, {info['collected']} collected")

    gc.callbacks.append(on_gc)


if __name__ == "__main__":
    from tocsin.cli import main

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    install_watchdog()
    sys.exit(main(sys.argv[2:]))
