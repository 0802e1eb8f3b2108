"""SIGTERM (a scheduler's stop) and Ctrl-C's SIGINT: the training loop ends its current
compiled call, writes a checkpoint at that step and exits 128 + the signal's number with one
line saying how to resume; the rerun ends with the uninterrupted reference's numbers.

Every child sets its own signal dispositions (`preexec_fn`), so that the tests do not depend
on how the suite was started: a shell without job control starts background commands with
SIGINT ignored, and a command under `nohup` keeps it so. The tests that compare with the
references (conftest.py) or start a cluster of two workers are marked `slow`; the Ctrl-C one
is one short run.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.conftest import REPO
from tests.faults import runs
from tests.faults.test_kill_and_resume import METRICS

STOPPED = (r"^stopped by {signal}{where} at step (\d+): checkpoint written \((\S*ckpt-(\d+))\); "
           r"rerun the same command to resume$")


def _dispositions(**handlers):
  """A preexec_fn setting each named signal's disposition in the child (SIGTERM default)."""
  handlers = {"SIGTERM": signal.SIG_DFL, **handlers}

  def preexec():
    for name, handler in handlers.items():
      signal.signal(getattr(signal, name), handler)

  return preexec


def _stop_line(run: runs.Run, name: str, where: str = "") -> tuple[int, str]:
  """The step and checkpoint of the run's one `stopped by` line (asserted: one, no
  traceback)."""
  lines = [line for line in run.stderr.splitlines() if line.startswith("stopped by ")]
  assert len(lines) == 1, run.stderr[-3000:]
  match = re.match(STOPPED.format(signal=name, where=re.escape(where)), lines[0])
  assert match, lines[0]
  assert match.group(1) == match.group(3)  # The checkpoint is of the step it stopped at.
  assert "Traceback" not in run.stderr
  return int(match.group(1)), match.group(2)


def _latest(work: pathlib.Path) -> tuple[int, list[str]]:
  """The step the latest checkpoint's state names, and the checkpoints there."""
  folder = work / "checkpoints" / "latest"
  state = (folder / "checkpoint").read_text().splitlines()[0]
  return (int(state.split("ckpt-")[1].rstrip('"')),
          sorted(p.name for p in folder.glob("ckpt-*.index")))


def _flags(references: runs.References, kind: str, work: pathlib.Path) -> list[str]:
  """The reference's command with checkpoints at epoch ends only (the cadence changes no
  number), so that the checkpoint at the stop is one the stop wrote."""
  cadence = {"dvbpr": "--checkpoint_every_steps", "gan": "--sample_every_steps"}[kind]
  return [f"{cadence}=0" if f.startswith(cadence + "=") else f
          for f in references.flags(kind, work)]


def _stopped_then_rerun(first: runs.Run, flags: list[str], work: pathlib.Path,
                        preexec) -> dict:
  """What a stopped run left, then the rerun of the same command to its end."""
  code = first.wait()
  latest = _latest(work) if code == 143 else None  # Before the rerun prunes old checkpoints.
  return {"first": first, "latest": latest, "work": work,
          "final": runs.run(*flags, preexec_fn=preexec)}


def _dvbpr_flow(references: runs.References, work: pathlib.Path) -> dict:
  flags = _flags(references, "dvbpr", work)
  # SIGINT ignored, as under nohup: it must change nothing, and SIGTERM still stop the run.
  preexec = _dispositions(SIGINT=signal.SIG_IGN)
  first = runs.Run(*flags, preexec_fn=preexec)
  seen = int(first.wait_for(r"step ([3-6])/48").group(1))
  first.signal(signal.SIGINT)
  first.wait_for(rf"step {seen + 2}/48")  # Still training: the run ends before otherwise.
  first.signal(signal.SIGTERM)
  return dict(_stopped_then_rerun(first, flags, work, preexec), seen=seen)


def _gan_flow(references: runs.References, work: pathlib.Path) -> dict:
  flags = _flags(references, "gan", work)
  first = runs.Run(*flags, preexec_fn=_dispositions())
  first.wait_for(r"step ([2-5])/24")
  first.signal(signal.SIGTERM)
  return _stopped_then_rerun(first, flags, work, _dispositions())


def _outside_training(tiny_data_dir, work: pathlib.Path) -> subprocess.CompletedProcess:
  """SIGTERM outside any training loop: the command line with its experiment replaced by
  one that signals itself and waits."""
  script = ("import os, signal, time; from experiments import main; "
            "main._run = lambda *a: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(60)); "
            "main.run()")
  return subprocess.run(
      [sys.executable, "-c", script, "--experiment=dataset", f"--data_dir={tiny_data_dir}",
       f"--workdir={work}"], cwd=REPO, env=runs.ENV, capture_output=True, text=True,
      timeout=120, preexec_fn=_dispositions())


@pytest.fixture(scope="module")
def stopped(references, tiny_data_dir, tmp_path_factory):
  references.start()
  root = tmp_path_factory.mktemp("stopped")
  results, failures = {}, {}
  flows = {"dvbpr": lambda: _dvbpr_flow(references, root / "dvbpr"),
           "gan": lambda: _gan_flow(references, root / "gan"),
           "outside": lambda: _outside_training(tiny_data_dir, root / "outside")}

  def go(name):
    try:
      results[name] = flows[name]()
    except BaseException as e:  # pylint: disable=broad-except
      failures[name] = e

  threads = [threading.Thread(target=go, args=(name,)) for name in flows]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  for name, error in failures.items():
    raise AssertionError(f"the {name} flow failed: {error}") from error
  return results


@pytest.mark.slow
@pytest.mark.long  # About 110 s together: `-m long` (the suite's 10-minute budget).
def test_sigterm_mid_epoch_checkpoints_that_step_and_the_dvbpr_rerun_ends_as_the_reference(
    stopped, references):
  seen = stopped["dvbpr"]
  first = seen["first"]
  assert first.process.returncode == 143, first.stderr[-3000:]  # 128 + SIGTERM.
  step, path = _stop_line(first, "SIGTERM")
  # Mid-epoch 1, after the ignored SIGINT, at a step no checkpoint was due.
  assert seen["seen"] + 2 <= step < 24
  assert path == str(seen["work"] / "checkpoints" / "latest" / f"ckpt-{step}")
  assert seen["latest"] == (step, [f"ckpt-{step}.index"])  # The only one: the stop's.

  final = seen["final"]
  assert final.process.returncode == 0, final.stderr[-3000:]
  assert re.search(rf"resumed from \S*ckpt-{step} at step {step}", final.stderr)
  expected = json.loads((references.dvbpr() / "results.json").read_text())
  got = json.loads((seen["work"] / "results.json").read_text())
  for key in METRICS:
    np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
  assert (got["steps"], got["best_epoch"]) == (expected["steps"], expected["best_epoch"])
  # The stop flushed the scalars of its steps: none missing, none twice.
  logged = runs.tensorboard_points(seen["work"] / "logs" / "train")
  assert max(logged.values()) == 1
  assert set(logged) == set(runs.tensorboard_points(references.dvbpr() / "logs" / "train"))


@pytest.mark.slow
@pytest.mark.long  # About 110 s together: `-m long` (the suite's 10-minute budget).
def test_sigterm_mid_epoch_and_the_gan_rerun_ends_with_the_reference_losses(stopped,
                                                                           references):
  seen = stopped["gan"]
  first = seen["first"]
  assert first.process.returncode == 143, first.stderr[-3000:]
  step, _ = _stop_line(first, "SIGTERM")
  assert 2 <= step < 12 and seen["latest"] == (step, [f"ckpt-{step}.index"])
  final = seen["final"]
  assert final.process.returncode == 0, final.stderr[-3000:]
  assert re.search(rf"resumed from \S*ckpt-{step} at step {step}", final.stderr)
  runs.assert_same_gan_results(seen["work"], references.gan())


@pytest.mark.slow
@pytest.mark.long  # About 110 s together: `-m long` (the suite's 10-minute budget).
def test_sigterm_outside_a_training_loop_is_one_line_and_exit_143(stopped):
  done = stopped["outside"]
  assert done.returncode == 143, done.stderr[-3000:]
  assert "Traceback" not in done.stderr
  assert done.stderr.splitlines()[-1] == (
      "stopped by SIGTERM: what was saved is kept; rerun the same command to resume from "
      "the last checkpoint")


def test_ctrl_c_stops_at_a_checkpoint_of_that_step(tiny_data_dir, tmp_path):
  work = tmp_path / "run"
  flags = ["--experiment=recommendation", "--preset=smoke", f"--data_dir={tiny_data_dir}",
           f"--workdir={work}", "--epochs=1", "--steps_per_epoch=20000", "--steps_per_loop=2",
           "--checkpoint_every_steps=4"]
  # Far more steps than it reaches before the signal (about 100 a second here): a fast
  # machine must not finish the run between the progress line and the signal. SIGINT is
  # set to its default in the child: see the module docstring.
  first = runs.Run(*flags, preexec_fn=_dispositions(SIGINT=signal.SIG_DFL))
  first.wait_for(r"step (1[2-9]|[2-9]\d)/20000")
  first.signal(signal.SIGINT)
  assert first.wait() == 130, first.stderr[-3000:]  # 128 + SIGINT.
  step, _ = _stop_line(first, "SIGINT")
  latest, written = _latest(work)
  assert step >= 12 and latest == step and f"ckpt-{step}.index" in written


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.long  # About 110 s together: `-m long` (the suite's 10-minute budget).
def test_sigterm_to_one_worker_stops_every_worker_at_the_same_step(tiny_data_dir, tmp_path):
  """A scheduler signals every worker, not within the same loop call: the extreme case, one
  worker only. The workers agree at the next loop boundary (an all-reduce of the signals),
  so both checkpoint that step and stop; a worker going on alone would block in the next
  collective instead."""
  work = tmp_path / "multi_worker"
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  flags = ["--experiment=recommendation", "--preset=smoke", f"--data_dir={tiny_data_dir}",
           f"--workdir={work}", "--strategy=multi_worker", "--epochs=1",
           "--steps_per_epoch=20000", "--steps_per_loop=1", "--checkpoint_every_steps=0"]
  workers = [runs.Run(*flags, preexec_fn=_dispositions(), env={"TF_CONFIG": json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": index}})})
             for index in range(2)]
  try:
    workers[1].wait_for(r"step ([5-9]|\d\d+)/20000", timeout=240)
    workers[1].signal(signal.SIGTERM)
    codes = [worker.wait(120) for worker in workers]
  finally:
    for worker in workers:
      if worker.process.poll() is None:
        worker.kill()
  assert codes == [143, 143], [w.stderr[-2000:] for w in workers]
  step, path = _stop_line(workers[0], "SIGTERM", where=" (sent to another worker)")
  assert path == str(work / "checkpoints" / "latest" / f"ckpt-{step}")
  assert _stop_line(workers[1], "SIGTERM") == (
      step, str(work / "workers" / "1" / "checkpoints" / "latest" / f"ckpt-{step}"))
  assert _latest(work)[0] == _latest(work / "workers" / "1")[0] == step
