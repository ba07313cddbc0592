"""A scheduler process for the multi-process tests: `python _worker.py URL OWNER MODE [ARGS]`.

Modes:
  ticks START_AT N         wait until unix time START_AT, then tick N times (as fast as it can)
  serve START_AT SECONDS   wait until START_AT, then run_forever(poll 0.05 s) for SECONDS
  crash-after-submit       tick once; the fire callable exits the process right after submitting
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta

from _ledger import JobLedger

from mor.scheduler import Scheduler
from mor.store import make_engine


def _wait_until(unix_time: float) -> None:
    delay = unix_time - time.time()
    if delay > 0:
        time.sleep(delay)


def main(argv: list[str]) -> int:
    url, owner, mode, *rest = argv
    engine = make_engine(url)
    if mode == "crash-after-submit":
        ledger = JobLedger(engine, owner, crash=lambda: os._exit(17))
        Scheduler(engine, ledger, owner_id=owner).tick()
        return 0
    ledger = JobLedger(engine, owner)
    scheduler = Scheduler(engine, ledger, owner_id=owner, misfire_grace=timedelta(minutes=5), max_backlog=25)
    _wait_until(float(rest[0]))
    if mode == "ticks":
        for _ in range(int(rest[1])):
            scheduler.tick()
    elif mode == "serve":
        stop = threading.Event()
        threading.Timer(float(rest[1]), stop.set).start()
        scheduler.run_forever(poll_seconds=0.05, stop_event=stop)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
