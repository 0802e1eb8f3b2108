"""Helpers of the fault tests: the command line as real subprocesses, and what they leave.

`Run` starts `python -m experiments.main` (or the same under `fault_injection`) with
`subprocess.Popen`, reads its stderr on a thread, and can wait for a line, stop, continue or
SIGKILL it. `run_all` runs independent commands a few at a time (the machine has 2 cores: the
commands mostly import TensorFlow). `tensorboard_points` and `snapshot` read what a run left
on disk. `References` are the uninterrupted runs that interrupted ones must match.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

from tests.conftest import REPO

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
CONCURRENCY = 3


class Run:
  """One command line run as a subprocess, its stderr collected line by line."""

  def __init__(self, *flags: str, fault: tuple[str, int] | None = None, preexec_fn=None,
               env: dict[str, str] | None = None):
    """`preexec_fn` runs in the child before the command (e.g. to set signal dispositions);
    `env` adds variables to ENV (e.g. TF_CONFIG)."""
    module = ["-m", "experiments.main"] if fault is None else [
        "-m", "tests.faults.fault_injection", fault[0], str(fault[1])]
    self.args = [sys.executable, *module, *flags]
    self.process = subprocess.Popen(
        self.args, cwd=REPO, env=dict(ENV, **(env or {})), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    self.lines: list[str] = []
    self._changed = threading.Condition()
    self._stdout: list[str] = []
    threading.Thread(target=self._read, args=(self.process.stderr, self.lines),
                     daemon=True).start()
    threading.Thread(target=self._read, args=(self.process.stdout, self._stdout),
                     daemon=True).start()

  @property
  def pid(self) -> int:
    return self.process.pid

  def _read(self, stream, into) -> None:
    for line in stream:
      with self._changed:
        into.append(line)
        self._changed.notify_all()
    with self._changed:
      self._changed.notify_all()

  def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
    """The first stderr line matching `pattern`, waiting for it (AssertionError if the run
    ends or the time runs out first)."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    seen = 0
    with self._changed:
      while True:
        for line in self.lines[seen:]:
          match = regex.search(line)
          if match:
            return match
        seen = len(self.lines)
        if self.process.poll() is not None and seen == len(self.lines):
          self._changed.wait(0.2)  # The reader may still hold the last lines.
          if seen == len(self.lines):
            raise AssertionError(f"the run ended before {pattern!r}:\n{self.stderr[-3000:]}")
        left = deadline - time.monotonic()
        if left <= 0:
          raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.stderr[-3000:]}")
        self._changed.wait(min(left, 0.5))

  def signal(self, number: int) -> None:
    os.kill(self.pid, number)

  def kill(self) -> int:
    """SIGKILL; returns the exit status (-9)."""
    self.signal(signal.SIGKILL)
    return self.wait()

  def wait(self, timeout: float = 300) -> int:
    code = self.process.wait(timeout)
    time.sleep(0.05)  # Let the readers drain the pipes.
    return code

  @property
  def stderr(self) -> str:
    return "".join(self.lines)

  @property
  def stdout(self) -> str:
    return "".join(self._stdout)

  def finish(self, timeout: float = 300) -> "Run":
    self.wait(timeout)
    return self


def run(*flags: str, **kwargs) -> Run:
  """Runs a command line to its end."""
  return Run(*flags, **kwargs).finish()


def run_all(commands: dict[str, list[str]]) -> dict[str, Run]:
  """Runs independent command lines, CONCURRENCY at a time: {key: finished Run}."""
  with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
    futures = {key: pool.submit(run, *flags) for key, flags in commands.items()}
    return {key: future.result() for key, future in futures.items()}


def assert_same_gan_results(work: pathlib.Path, reference: pathlib.Path) -> None:
  """A resumed GAN run's results.json against the uninterrupted reference's: the steps, the
  loss history and the final losses (to 1e-6)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  expected = json.loads((reference / "results.json").read_text())
  got = json.loads((work / "results.json").read_text())
  assert got["steps"] == expected["steps"] == GAN_STEPS
  assert got["loss_history"] == expected["loss_history"]
  for key, value in expected["final_losses"].items():
    np.testing.assert_allclose(got["final_losses"][key], value, rtol=0, atol=1e-6,
                               err_msg=key)


def error_lines(stderr: str) -> list[str]:
  """The `error: ...` lines a command printed (the project's one-line messages)."""
  return [line for line in stderr.splitlines() if line.startswith("error: ")]


def tensorboard_points(logdir: pathlib.Path) -> collections.Counter:
  """How many times each (tag, step) was written, over every event file under `logdir`."""
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  counts = collections.Counter()
  for path in sorted(logdir.rglob("events.out.tfevents.*")):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        counts[(value.tag, event.step)] += 1
  return counts


def snapshot(root: pathlib.Path) -> dict[str, str]:
  """{relative path: sha1 of the content} of every file under `root` ({} if absent)."""
  if not root.exists():
    return {}
  return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


def watch(root: pathlib.Path, predicate, run: Run, timeout: float = 120) -> list[str]:
  """Polls `root` (every 0.5 ms) for a path satisfying `predicate` while `run` lives:
  [that path], or [] when the run ended or the time ran out first."""
  stop, found = threading.Event(), []
  watcher = threading.Thread(target=poll_for_path, args=(root, predicate, stop, found))
  watcher.start()
  deadline = time.monotonic() + timeout
  while watcher.is_alive() and run.process.poll() is None and time.monotonic() < deadline:
    watcher.join(0.05)
  stop.set()
  watcher.join()
  return found


def leftovers(root: pathlib.Path) -> list[str]:
  """Temporary files and folders of interrupted writes under `root`."""
  return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                if p.name.endswith(".tmp") or "_temp" in p.name or ".tempstate" in p.name
                or (p.name.startswith(".") and p.parent.name == "export"))


def poll_for_path(root: pathlib.Path, predicate, stop: threading.Event,
                  found: list, interval: float = 0.0005) -> None:
  """Walks `root` until a path (a string) satisfies `predicate` (appended to `found`), or
  until `stop` is set."""
  while not stop.is_set():
    try:
      for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
          path = os.path.join(dirpath, name)
          if predicate(path):
            found.append(path)
            return
    except OSError:
      pass
    time.sleep(interval)


# Small runs with many checkpoints (every 3 steps) and one step per compiled call, so that
# a kill can land between any two steps; --deterministic as the issue asks.
DVBPR_FLAGS = ("--experiment=recommendation", "--preset=smoke", "--deterministic",
               "--steps_per_epoch=24", "--epochs=2", "--steps_per_loop=1",
               "--checkpoint_every_steps=3")
DVBPR_STEPS = 48
GAN_FLAGS = ("--experiment=gan", "--preset=smoke", "--deterministic", "--steps_per_epoch=12",
             "--epochs=2", "--steps_per_loop=1", "--sample_every_steps=3")
GAN_STEPS = 24


class References:
  """The reference DVBPR and GAN runs (each started once, waited for on demand)."""

  def __init__(self, root: pathlib.Path, data_dir: pathlib.Path):
    self.root, self.data_dir = root, data_dir
    self._runs: dict[str, Run] = {}

  def flags(self, kind: str, workdir: pathlib.Path) -> list[str]:
    base = DVBPR_FLAGS if kind == "dvbpr" else GAN_FLAGS
    return [*base, f"--data_dir={self.data_dir}", f"--workdir={workdir}"]

  def start(self) -> "References":
    for kind in ("dvbpr", "gan"):
      if kind not in self._runs:
        self._runs[kind] = Run(*self.flags(kind, self.root / kind))
    return self

  def _finished(self, kind: str) -> pathlib.Path:
    self.start()
    run = self._runs[kind]
    code = run.wait()
    assert code == 0, f"the reference {kind} run failed:\n{run.stderr[-3000:]}"
    return self.root / kind

  def dvbpr(self) -> pathlib.Path:
    """The finished reference DVBPR work dir."""
    return self._finished("dvbpr")

  def gan(self) -> pathlib.Path:
    """The finished reference GAN work dir."""
    return self._finished("gan")
