"""What the benchmarks measure: wall time and peak resident memory, of parts and of processes;
and where the study's data is, for those that start from it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from pipeline import steps

MIB = 2**20
# The study's public data: $KIC_STUDY_DATA, else ../shared/seed/study-data beside the checkout.
STUDY_DATA = Path(
    os.environ.get("KIC_STUDY_DATA", Path(__file__).resolve().parents[2] / "shared" / "seed" / "study-data")
)
STUDY_FILE = STUDY_DATA / "beauty_data_extend.csv"


class Meter:
    """Wall time and peak RSS (sampled every 20 ms) of each named part."""

    def __init__(self):
        self.parts: dict[str, tuple[float, int]] = {}
        self.peak = 0
        self.running = True
        threading.Thread(target=self.sample, daemon=True).start()

    @staticmethod
    def rss() -> int:
        return process_status("VmRSS")

    def sample(self):
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    @contextlib.contextmanager
    def part(self, name: str):
        self.peak = self.rss()
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.peak = max(self.peak, self.rss())
            done = self.parts.get(name, (0.0, 0))
            self.parts[name] = (done[0] + seconds, max(done[1], self.peak))

    def call(self, step):
        """A `call` for pipeline.jobs: every step is a part, and fit reports its own parts."""

        def run(*args, **kwargs):
            if step is steps.fit:
                kwargs["probe"] = self.part
                return step(*args, **kwargs)
            with self.part(step.__name__):
                return step(*args, **kwargs)

        return run


def process_status(field: str, pid: int | str = "self") -> int:
    """A memory figure of a process from /proc/<pid>/status (VmRSS, VmHWM, …), in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def run_process(command: list[str]) -> tuple[float, int]:
    """Run a command to its end: its wall seconds and its own peak RSS (bytes).

    The peak is the child's VmHWM, read every 10 ms until it exits. Not its ru_maxrss: Linux
    counts in it the address space the child was forked from, i.e. this (benchmark) process's RSS.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        peak = 0
        while child.poll() is None:
            peak = max(peak, process_status("VmHWM", child.pid))
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {errors.read().decode()[-2000:]}")
    return seconds, peak
