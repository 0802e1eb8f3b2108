"""Stopping cleanly when a scheduler asks: SIGTERM (and Ctrl-C's SIGINT) end a training run at
a checkpoint instead of at once.

Cluster schedulers (Kubernetes, Slurm preemption) stop a job with SIGTERM and kill it a grace
period later. For the duration of `Trainer.run`, `StopSignals` replaces the handlers of SIGTERM
and SIGINT with one that only records the signal; after each compiled loop call the trainer
looks, writes a checkpoint at that step and raises `TrainingStopped`. The command line
(`experiments/main.py`) prints its one line and exits 128 + the signal's number (143 for
SIGTERM, 130 for SIGINT); rerunning the same command resumes from that checkpoint to the same
final numbers as a run never stopped.

- A second signal of the same kind falls back to the handler that was there before (Python's
  KeyboardInterrupt for SIGINT; the command line's `raise_on_sigterm`, or the default
  immediate death, for SIGTERM): a way out when the checkpoint takes too long.
- A signal that is ignored (SIG_IGN) stays ignored: a command started under `nohup` or in the
  background of a shell without job control inherits SIGINT ignored and keeps it so, while
  SIGTERM, which neither touches, still stops the run.
- Python runs signal handlers between bytecodes of the main thread only, so a signal that
  arrives inside a compiled loop call is seen when the call returns, and handlers are only
  installed when `Trainer.run` is called from the main thread.

Outside a training loop (dataset builds, evaluation, design) the command line's
`raise_on_sigterm` turns SIGTERM into a `Stopped` exception, caught like KeyboardInterrupt:
one line, exit 143, no traceback.

Multi-worker clusters: see `trainer._stop_agreement` (the workers agree on the stop).
"""

from __future__ import annotations

import contextlib
import signal
import threading

# In order of precedence: a cluster whose workers got different ones stops for the first.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
  """A stop signal ended the run (a BaseException, like KeyboardInterrupt: no `except
  Exception` on the way swallows it).

  Attributes:
    signal_number: the signal (signal.SIGTERM or signal.SIGINT).
  """

  def __init__(self, signal_number: int):
    super().__init__(signal_number)
    self.signal_number = int(signal_number)

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.signal_number).name

  @property
  def exit_code(self) -> int:
    """128 + the signal's number, what a shell reports for a process the signal killed."""
    return 128 + self.signal_number

  def __str__(self) -> str:
    return (f"stopped by {self.signal_name}: what was saved is kept; rerun the same command "
            "to resume from the last checkpoint")


class TrainingStopped(Stopped):
  """A training loop stopped at a signal, after checkpointing the step it had reached.

  Attributes:
    step: the step the loop stopped at (that of the checkpoint).
    checkpoint_path: the latest checkpoint (None when the loop stopped before any).
    received_here: False on a worker of a cluster that stopped because another worker
      received the signal.
  """

  def __init__(self, signal_number: int, step: int, checkpoint_path: str | None,
               received_here: bool = True):
    super().__init__(signal_number)
    self.step, self.checkpoint_path = int(step), checkpoint_path
    self.received_here = received_here

  def __str__(self) -> str:
    where = "" if self.received_here else " (sent to another worker)"
    if self.checkpoint_path is None:
      return (f"stopped by {self.signal_name}{where} at step {self.step}, before any "
              "checkpoint; rerun the same command to start again")
    return (f"stopped by {self.signal_name}{where} at step {self.step}: checkpoint written "
            f"({self.checkpoint_path}); rerun the same command to resume")


class StopSignals:
  """Records SIGTERM and SIGINT instead of acting on them, while used as a context manager.

  `received` is the first stop signal's number (0 while none came). Entering installs the
  handler for each signal that is not ignored, and only in the main thread (elsewhere Python
  allows no handler: nothing is installed and only `request` sets `received`); leaving
  restores the handlers that were there before.
  """

  def __init__(self):
    self.received = 0
    self._seen: set[int] = set()
    self._previous: dict[int, object] = {}

  def request(self, signal_number: int) -> None:
    """Asks for a stop as the signal `signal_number` would (its handler's first call)."""
    if not self.received:
      self.received = int(signal_number)

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is not threading.main_thread():
      return self
    for number in STOP_SIGNALS:
      previous = signal.getsignal(number)
      # None: a handler installed outside Python, which could not be put back.
      if previous in (signal.SIG_IGN, None):
        continue
      self._previous[number] = previous
      signal.signal(number, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for number, previous in self._previous.items():
      signal.signal(number, previous)
    self._previous.clear()

  def _handle(self, signal_number: int, frame) -> None:
    if signal_number not in self._seen:
      self._seen.add(signal_number)
      self.request(signal_number)
      return
    # The same signal again: what it did before, at once.
    previous = self._previous.get(signal_number, signal.SIG_DFL)
    if callable(previous):
      previous(signal_number, frame)
    else:  # SIG_DFL: the process ends as the signal's default says.
      signal.signal(signal_number, signal.SIG_DFL)
      signal.raise_signal(signal_number)


@contextlib.contextmanager
def raise_on_sigterm():
  """For the command line: SIGTERM raises `Stopped(SIGTERM)` wherever the main thread is (as
  SIGINT raises KeyboardInterrupt), once; a second SIGTERM terminates at once. Nothing is
  installed outside the main thread or when SIGTERM is ignored. The previous handler is
  restored on leaving."""
  if (threading.current_thread() is not threading.main_thread()
      or signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, None)):
    yield
    return

  def handle(signal_number, frame):
    del frame
    signal.signal(signal_number, signal.SIG_DFL)  # The next one is not caught.
    raise Stopped(signal_number)

  previous = signal.signal(signal.SIGTERM, handle)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)
