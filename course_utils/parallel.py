"""Several runs at once on one machine: each run in a process of its own (``python -m course_utils run
EXPERIMENT --only LABEL``), at most ``at_once`` at a time, each writing its own record.

On a fast GPU a small network at batch 128 leaves the GPU waiting while Python launches the next
kernel; N processes launch N streams of kernels, and the GPU interleaves them. On a CPU it splits the
cores between the runs. Each process trains exactly what ``python -m course_utils run`` would train
for that run alone (same seed, same data order, same start), so the records are those of the runs
one after another (bit for bit on a CPU; a GPU's convolution algorithms may differ in the last bits).

    python -m course_utils run depth --mode full --jobs 4 --out data/runs/depth-full
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class Job:
    """One run of an experiment, as one ``python -m course_utils run`` command."""

    experiment: str
    label: str  # the run's label, as ``--only`` takes it
    out_dir: Path
    mode: str
    seed: int = 0
    settings: tuple[str, ...] = ()  # KEY=VALUE, as ``--set`` takes them
    overwrite: bool = False
    save_models: bool = False
    expected_seconds: float = 0.0  # not started when less time than this is left before the deadline
    name: str = ""  # how the output lines are prefixed (default: the label)
    script: tuple[str, ...] = ()  # a script and its arguments to run instead (e.g. a benchmark over seeds)

    def command(self) -> list[str]:
        if self.script:
            return [sys.executable, *self.script, *(["--set", *self.settings] if self.settings else [])]
        command = [sys.executable, "-m", "course_utils", "run", self.experiment, "--mode", self.mode,
                   "--only", self.label, "--seed", str(self.seed), "--out", str(self.out_dir), "--no-progress"]
        if self.settings:
            command += ["--set", *self.settings]
        if self.overwrite:
            command.append("--overwrite")
        if self.save_models:
            command.append("--save-models")
        return command


@dataclass
class JobResult:
    job: Job
    status: str = "not started"  # "done", "failed", "stopped at the deadline" or "not started"
    returncode: int | None = None
    seconds: float = 0.0
    last_lines: list[str] = field(default_factory=list)  # the end of its output, to say why it failed


def run_jobs(jobs: list[Job], *, at_once: int, deadline: float | None = None, env: dict | None = None,
             echo: bool = True, log_dir: Path | None = None) -> list[JobResult]:
    """Run ``jobs`` in order, at most ``at_once`` at a time; return one result per job, in order.

    ``deadline`` (a ``time.monotonic()`` value): no job starts after it, or with less time left than
    its ``expected_seconds``; a job still running then is stopped as Ctrl-C stops a run (its record is
    not written, the records of finished jobs stay). ``env``: variables added to each process's
    environment (e.g. ``COURSE_GIT_COMMIT``). Each process gets its share of the CPU threads.
    Output lines are printed as they come, prefixed with the job's name, when ``echo``, and written
    to ``log_dir/NAME.log`` (one file per job) when ``log_dir`` is given.
    """
    if at_once < 1:
        raise ValueError(f"at_once must be at least 1, got {at_once!r}")
    threads = max(1, torch.get_num_threads() // at_once)  # N processes of all cores each would thrash
    child_env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    results = [JobResult(job) for job in jobs]
    waiting = list(results)
    running: dict[subprocess.Popen, tuple[JobResult, float, threading.Thread]] = {}
    lock = threading.Lock()

    def time_left() -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                result = waiting.pop(0)
                if time_left() <= max(result.job.expected_seconds, 0.0):
                    continue  # stays "not started": it could not finish before the deadline
                process = subprocess.Popen(result.job.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, env=child_env, preexec_fn=_default_ctrl_c)
                log = _log_file(log_dir, result.job) if log_dir is not None else None
                reader = threading.Thread(target=_relay, args=(process, result, echo, lock, log), daemon=True)
                reader.start()
                running[process] = (result, time.monotonic(), reader)
            if time_left() <= 0 and any(process.poll() is None for process in running):
                late = [process for process in running if process.poll() is None]
                for process in late:
                    running[process][0].status = "stopped at the deadline"
                _stop(late)  # all at once: each may take seconds to finish its step
            for process, (result, started, reader) in list(running.items()):
                if process.poll() is not None:
                    reader.join()
                    result.returncode, result.seconds = process.returncode, time.monotonic() - started
                    if result.status == "not started":
                        result.status = "done" if process.returncode == 0 else "failed"
                    del running[process]
            time.sleep(0.1)
    finally:  # Ctrl-C (or an error) in this process: stop every run it started
        _stop(list(running))
    return results


def _default_ctrl_c() -> None:
    """In each run's process: Ctrl-C stops it (a shell starts background jobs with Ctrl-C ignored, and a
    child would inherit that, so _stop could not stop it cleanly)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _log_file(log_dir: Path, job: Job) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / (re.sub(r"[^A-Za-z0-9._-]+", "-", job.name or f"{job.experiment}-{job.label}").strip("-") + ".log")


def _relay(process: subprocess.Popen, result: JobResult, echo: bool, lock: threading.Lock,
           log: Path | None) -> None:
    """Print a process's output lines as they come, prefixed with its job's name (and write them to
    ``log``); keep the last few for the summary."""
    prefix = f"[{result.job.name or result.job.label}] "
    with open(log, "w") if log is not None else contextlib.nullcontext() as file:
        for line in process.stdout:
            line = line.rstrip("\n")
            result.last_lines = (result.last_lines + [line])[-12:]
            if file is not None:
                file.write(line + "\n")
                file.flush()
            if echo:
                with lock:
                    print(prefix + line, flush=True)


def _stop(processes: list[subprocess.Popen], patience: float = 30) -> None:
    """Stop runs as Ctrl-C does (each cleans up after itself: no record of its unfinished run, no lock
    file left); kill those still running ``patience`` seconds later."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    give_up = time.monotonic() + patience
    for process in processes:
        try:
            process.wait(timeout=max(give_up - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def summary_line(result: JobResult) -> str:
    """One line per job for the end of a parallel run: what happened and how long it took."""
    line = f"{result.job.name or result.job.label}: {result.status}"
    if result.returncode is not None:
        line += f" (exit {result.returncode}, {result.seconds:.0f} s)"
    if result.status == "failed" and result.last_lines:
        line += f": {result.last_lines[-1]}"
    return line
