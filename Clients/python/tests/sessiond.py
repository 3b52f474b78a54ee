"""Starting and stopping a real sessiond for the tests."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence


def wait_until(predicate, timeout: float, what: str, interval: float = 0.01):
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Sessiond:
    """One sessiond process on a data directory of its own.

    Started with ``--listen 127.0.0.1:0 --port-file …`` (the kernel picks the
    port; the test reads it from the port file) unless `listen` names one, as
    a restart on the same port does. Its stdout and stderr go to `log_path`.
    """

    def __init__(self, binary: str, workdir: Path, name: str = "sessiond", args: Sequence[str] = ()) -> None:
        self.binary = binary
        self.workdir = Path(workdir)
        self.name = name
        self.args = list(args)
        self.data_dir = self.workdir / f"{name}-data"
        self.port_file = self.workdir / f"{name}.port"
        self.log_path = self.workdir / f"{name}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.starts = 0

    @property
    def address(self) -> str:
        assert self.port is not None
        return f"127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, listen: str = "127.0.0.1:0", timeout: float = 60.0) -> "Sessiond":
        assert not self.running, "already running"
        try:
            self.port_file.unlink()
        except FileNotFoundError:
            pass
        self.starts += 1
        cmd: List[str] = [self.binary, "--listen", listen, "--port-file", str(self.port_file),
                          "--data-dir", str(self.data_dir), *self.args]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {proc.returncode} while starting:\n{self.log_tail()}")
            try:
                text = self.port_file.read_text()
            except FileNotFoundError:
                return None
            return text.strip() or None

        self.port = int(wait_until(ready, timeout, f"{self.name}'s port file"))
        wait_until(lambda: (self.data_dir / "admin-token").exists(), timeout, "the admin token")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> Optional[int]:
        """Signals the process and waits for it to exit (SIGKILL after `timeout`)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
