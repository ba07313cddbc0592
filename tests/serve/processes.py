"""`mor serve` as a user runs it: the real CLI in a subprocess of its own, with its output collected."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["MorServe", "free_port", "serve_env"]

_CLUSTER_ENV = ("MOR_API_KEYS", "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(home: Path) -> dict[str, str]:
    """The environment of a `mor serve` of `home`: none of the test session's cluster settings."""
    env = {key: value for key, value in os.environ.items() if key not in _CLUSTER_ENV}
    env.update({"MOR_HOME": str(home), "COLUMNS": "250", "PYTHONUNBUFFERED": "1"})
    return env


def _ignore_sigint() -> None:
    """Start `mor serve` as a shell script's `mor serve &` starts it: with SIGINT ignored (Python then installs no
    Ctrl-C handler of its own), so the tests show that SIGINT still stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class MorServe:
    """`python -m mor.cli.main serve ARGS` for `home`, started at once; `wait_ready` waits for its base URL."""

    def __init__(self, home: Path, *arguments: str) -> None:
        command = [sys.executable, "-m", "mor.cli.main", "serve", *arguments]
        self.process = subprocess.Popen(
            command,
            env=serve_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_ignore_sigint,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, ""):
            self._lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        """Everything printed so far, one line per printed line (long lines are not wrapped: COLUMNS=250)."""
        return "".join(self._lines)

    def wait_ready(self, timeout_s: float = 300.0) -> tuple[str, str]:
        """`(base URL, generated API key)` once it serves; fails with its output when it exits first."""
        deadline = time.monotonic() + timeout_s
        while "Press Ctrl-C" not in self.output:
            if self.process.poll() is not None:
                self._reader.join(timeout=10)
                raise AssertionError(f"mor serve exited with {self.process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"mor serve not ready after {timeout_s:.0f} s:\n{self.output}")
            time.sleep(0.3)
        base_url = re.search(r"Base URL: (\S+)", self.output)
        key = re.search(r"API key \(generated, none was configured\): (\S+)", self.output)
        assert base_url and key, self.output
        return base_url.group(1), key.group(1)

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout_s: float = 120.0) -> int:
        """Send `sig` and wait for the exit code (output complete afterwards); fails with its output and its
        threads' stacks (py-spy, which Ray installs) when it has not exited in `timeout_s`."""
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stacks = self._stacks()
            self.kill()
            raise AssertionError(
                f"mor serve did not exit within {timeout_s:.0f} s of {sig.name}; its output:\n{self.output}\n"
                f"its stacks:\n{stacks}"
            ) from None
        self._reader.join(timeout=10)
        return code

    def _stacks(self) -> str:
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            return "(py-spy not installed)"
        dumped = subprocess.run(
            [str(spy), "dump", "--pid", str(self.pid)], capture_output=True, text=True, timeout=60, check=False
        )
        return dumped.stdout + dumped.stderr

    def kill(self) -> None:
        """End it at once (SIGKILL), as a crash would: nothing of its own clean-up runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
