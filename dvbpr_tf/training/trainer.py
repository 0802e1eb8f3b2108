"""One training-loop skeleton for every model of the project (DVBPR, baselines, the GAN).

A task owns the model, its inputs and its step; the `Trainer` owns the loop:

- a `tf.function` that runs `steps_per_loop` steps per call (`for _ in tf.range(n)`), with a
  `run_eagerly` switch for debugging;
- checkpoints (`tf.train.CheckpointManager`: the task's trackables and the step), written at
  every epoch end and every `checkpoint_every_steps`; a rerun in the same work dir resumes
  from the latest one;
- evaluation at each epoch end, and a second manager that keeps the checkpoint with the best
  validation metric (the paper reports the model with the best validation AUC);
- TensorBoard scalars, buffered in memory and written right after each checkpoint, so the
  event files never hold a step that a resumed run would log again;
- progress lines through absl.logging: epoch, step, loss, examples/s, time left;
- a stop with a clear message, before anything is saved, when a loss is NaN or infinite;
- a graceful stop on SIGTERM or SIGINT (preemption.py): the current compiled call ends, a
  checkpoint is written at that step, and `preemption.TrainingStopped` is raised; on a
  multi-worker cluster the workers first agree on it (an all-reduce of the signals received),
  so that all of them stop, and checkpoint together, at the same step;
- an optional `tf.distribute.Strategy` (core/distribution.py): the task's variables are made in
  its scope by the caller, the trainer feeds each replica its rows of the global batch, runs
  the step on every replica and SUM-reduces the replicas' shares of the losses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import signal
import time
from typing import Mapping, Protocol

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import checks
from dvbpr_tf.core import distribution
from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.training import preemption


class TrainingDivergedError(errors.UserError):
  """A loss became NaN or infinite."""


class DamagedCheckpointError(errors.UserError):
  """A checkpoint's files cannot be read (cut short, overwritten)."""


def _read_damage(restore) -> str | None:
  """Calls `restore()` (a checkpoint restore returning its status); None when it read the
  checkpoint, else what was wrong with the checkpoint's files, in a few words.

  A file cut short raises IndexError ("Read less bytes than requested") from the reader, an
  index that does not parse a DataLossError; a checkpoint that reads but does not hold the
  model's variables (another model's) keeps its AssertionError: that is not damage.
  """
  try:
    restore().assert_existing_objects_matched()
  except IndexError as e:
    return f"a file is cut short: {e}"
  except tf.errors.OpError as e:
    return " ".join(str(e.message).split())[:200]
  return None


def _restore_or_refuse(restore, path: str) -> None:
  """Restores one checkpoint that has no fallback (the best one, an export's weights)."""
  damage = _read_damage(restore)
  if damage is not None:
    raise DamagedCheckpointError(
        f"the checkpoint {path} cannot be read ({damage}); copy it back from a backup, or "
        "train again in a new --workdir")


def _checkpoints_newest_first(manager: tf.train.CheckpointManager, folder) -> list[str]:
  """The checkpoints to try restoring: the manager's, newest first, then any other
  `ckpt-<step>` found on disk (a damaged `checkpoint` state file lists none)."""
  found = list(reversed(manager.checkpoints))
  if manager.latest_checkpoint and manager.latest_checkpoint not in found:
    found.insert(0, manager.latest_checkpoint)
  on_disk = []
  for index in pathlib.Path(folder).glob("ckpt-*.index"):
    number = index.name[len("ckpt-"):-len(".index")]
    if number.isdigit():
      on_disk.append((int(number), str(index.with_suffix(""))))
  found += [path for _, path in sorted(on_disk, reverse=True) if path not in found]
  return found


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """Attributes:
    epochs: number of epochs.
    steps_per_epoch: steps in one epoch.
    steps_per_loop: steps per call of the compiled loop (and per progress line).
    checkpoint_every_steps: extra checkpoints inside an epoch (0: only at epoch ends).
    keep_checkpoints: how many latest checkpoints to keep.
    best_metric: the evaluation key that selects the best checkpoint ('' for none).
    patience: stop once `best_metric` has not improved for this many epoch-end evaluations
      (0: train all epochs). The best checkpoint is kept either way; a rerun of a run that
      stopped early stops again at once.
    jit_compile: compile the training step with XLA (`tf.function(jit_compile=True)`; the
      loop around it, which reads the input pipeline, stays a plain tf.function).
    run_eagerly: run the step without tf.function (debugging).
  """

  epochs: int
  steps_per_epoch: int
  steps_per_loop: int = 50
  checkpoint_every_steps: int = 0
  keep_checkpoints: int = 2
  best_metric: str = "auc_valid"
  patience: int = 0
  jit_compile: bool = False
  run_eagerly: bool = False

  def __post_init__(self):
    for name in ("epochs", "steps_per_epoch", "steps_per_loop"):
      checks.integer(name, getattr(self, name), 1)
    checks.integer("checkpoint_every_steps", self.checkpoint_every_steps, 0)
    checks.integer("keep_checkpoints", self.keep_checkpoints, 1)
    checks.integer("patience", self.patience, 0)

  @property
  def total_steps(self) -> int:
    return self.epochs * self.steps_per_epoch


def steps_per_epoch(num_examples: int, batch_size: int, override: int = 0) -> int:
  """The authors' epoch: `num_examples // batch_size` steps (at least 1), or `override` when
  it is > 0."""
  if override > 0:
    return int(override)
  return max(1, int(num_examples) // int(batch_size))


def learning_rate_schedule(rate: float, schedule: str, total_steps: int | None):
  """Adam's step size: `rate` throughout ('constant') or falling from `rate` to 0 along a
  cosine over `total_steps` ('cosine')."""
  if schedule == "constant":
    return rate
  if not total_steps:
    raise ValueError("a cosine schedule needs the run's total steps")
  return keras.optimizers.schedules.CosineDecay(rate, int(total_steps))


def restore_model(workdir: workdir_lib.Workdir, which: str = "best", **objects) -> str:
  """Restores `objects` (the task's trackables by the names it checkpoints them under: a
  DVBPR's `model`, a GAN's `generator` and `discriminator`) from a work dir's `which`
  checkpoint (`best`, falling back to `latest` for runs that keep no best), reading only
  those objects: no optimizer, sampler or input pipeline is built. Returns the checkpoint's
  path.

  Raises:
    errors.UserError: the work dir holds no such checkpoint.
  """
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  path = None
  for name in (which, "latest"):
    path = path or tf.train.latest_checkpoint(str(workdir.checkpoints / name))
  if not path:
    raise errors.UserError(f"no checkpoint in {workdir.checkpoints}: train the model there "
                           "first")
  _restore_or_refuse(lambda: tf.train.Checkpoint(**objects).read(path).expect_partial(), path)
  logging.info("restored %s from %s", ", ".join(objects), path)
  return path


class Task(Protocol):
  """What the trainer needs from a model."""

  metric_names: tuple[str, ...]  # Scalars `train_step` returns; the first is the total loss.
  examples_per_step: int
  example_unit: str  # e.g. "pairs" or "images"

  def trackables(self) -> Mapping[str, tf.Module]: ...
  # The batches from step `start_step`; with a shard, that input pipeline's per-replica rows
  # of each global batch (distribution.split_batches).
  def dataset(self, start_step: int, shard: distribution.Shard | None = None
              ) -> tf.data.Dataset: ...
  # One step; under a strategy it runs on every replica, and each value it returns is the
  # replica's share: the SUM over replicas is the global batch's value.
  def train_step(self, batch) -> Mapping[str, tf.Tensor]: ...
  def evaluate(self) -> Mapping[str, float]: ...
  def learning_rate(self) -> float: ...
  # Optional: `write_summaries(step)`, called inside the summary writer at every checkpoint;
  # `before_checkpoint()`, called just before every checkpoint is written;
  # `prepare_batch(batch)`, applied to each batch before `train_step` and outside its XLA
  # compilation (`jit_compile`).


class Trainer:
  """Runs a task's training to the end, resuming from the work dir's checkpoints."""

  def __init__(self, task: Task, config: LoopConfig, workdir: workdir_lib.Workdir,
               strategy: tf.distribute.Strategy | None = None):
    self.task, self.config, self.work = task, config, workdir
    self.strategy = strategy
    distribution.check_global_batch(task.examples_per_step, strategy)
    with distribution.scope(strategy):
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.checkpoint = tf.train.Checkpoint(step=self.step, **task.trackables())
    self.latest = tf.train.CheckpointManager(
        self.checkpoint, str(workdir.checkpoints / "latest"), config.keep_checkpoints,
        checkpoint_name="ckpt")
    self.best = tf.train.CheckpointManager(
        self.checkpoint, str(workdir.checkpoints / "best"), 1, checkpoint_name="ckpt")
    self.history_path = workdir.checkpoints / "history.json"
    self.history: list[dict] = []
    self._buffer: list[tuple[int, str, float]] = []
    self._writer = None
    self.last_metrics: dict[str, float] = {}  # Means over the last compiled loop.

  # --- state -----------------------------------------------------------------------------

  def restore(self) -> int:
    """Restores the latest readable checkpoint if any; returns the step to continue from.

    A checkpoint whose files are damaged (a data file cut short by a full disk or a copy, an
    index that does not parse) is skipped with a warning naming it, and the one before it is
    restored: the run repeats the steps in between (their TensorBoard points appear twice).

    Raises:
      DamagedCheckpointError: checkpoints are there but none of them can be read.
    """
    candidates = _checkpoints_newest_first(self.latest, self.work.checkpoints / "latest")
    for number, path in enumerate(candidates):
      damage = _read_damage(lambda p=path: self.checkpoint.restore(p))
      if damage is None:
        if number:
          logging.warning("resumed from the previous checkpoint %s instead", path)
        break
      logging.warning("the checkpoint %s cannot be read (%s): %s", path, damage,
                      "trying the one before it" if number + 1 < len(candidates)
                      else "no other checkpoint is left")
    else:
      if candidates:
        raise DamagedCheckpointError(
            f"none of the checkpoints in {self.work.checkpoints / 'latest'} can be read "
            f"(the latest: {damage}); delete {self.work.checkpoints} to train from the start")
      return int(self.step.numpy())
    if self.history_path.exists():
      saved = json.loads(self.history_path.read_text())
      self.history = [h for h in saved if h["step"] <= int(self.step.numpy())]
    logging.info("resumed from %s at step %d", path, int(self.step.numpy()))
    return int(self.step.numpy())

  def restore_best(self) -> dict | None:
    """Loads the best checkpoint's weights; returns its evaluation record."""
    path = self.best.latest_checkpoint
    if not path:
      return None
    _restore_or_refuse(lambda: self.checkpoint.restore(path), path)
    return self.best_record()

  def best_record(self) -> dict | None:
    metric = self.config.best_metric
    scored = [h for h in self.history if metric and _finite(h.get(metric))]
    return max(scored, key=lambda h: h[metric]) if scored else (
        self.history[-1] if self.history else None)

  def stopped_early(self) -> dict | None:
    """With a patience: the last evaluation when `patience` evaluations have passed since
    the best one (training stops there), else None."""
    patience, metric = self.config.patience, self.config.best_metric
    best = self.best_record()
    if not patience or not metric or best is None or not self.history:
      return None
    last = self.history[-1]
    if last["epoch"] - best["epoch"] >= patience:
      return last
    return None

  # --- loop ------------------------------------------------------------------------------

  def _compiled_loop(self):
    task, step, strategy = self.task, self.step, self.strategy
    train_step = task.train_step
    if self.config.jit_compile and not self.config.run_eagerly:
      train_step = tf.function(task.train_step, jit_compile=True)

    prepare = getattr(task, "prepare_batch", None)

    def replica_step(batch):
      if prepare is not None:  # Outside the XLA cluster (e.g. a binary search).
        batch = prepare(batch)
      return train_step(batch)

    def one_step(batch):
      if strategy is None:
        return replica_step(batch)
      shares = strategy.run(replica_step, args=(batch,))
      return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, shares[k], axis=None)
              for k in task.metric_names}

    def loop(iterator, num_steps):
      totals = {name: tf.constant(0.0) for name in task.metric_names}
      for _ in tf.range(num_steps):
        values = one_step(next(iterator))
        totals = {k: totals[k] + tf.cast(values[k], tf.float32) for k in totals}
        step.assign_add(1)
      return {k: v / tf.cast(num_steps, tf.float32) for k, v in totals.items()}

    return loop if self.config.run_eagerly else tf.function(loop)

  def run(self, until_step: int | None = None) -> dict:
    """Trains to `total_steps` (or stops at `until_step`, after checkpointing there);
    returns a summary (history, best record, rates, time).

    Raises:
      preemption.TrainingStopped: SIGTERM or SIGINT came (to this process, or to another
        worker of the cluster); the loop stopped after its current compiled call, at a
        checkpoint of the step it had reached, from which a rerun resumes.
      TrainingDivergedError: a loss became NaN or infinite.
    """
    with preemption.StopSignals() as signals:
      return self._run(until_step, signals)

  def _run(self, until_step: int | None, signals: preemption.StopSignals) -> dict:
    config = self.config
    last_step = config.total_steps if until_step is None else min(until_step,
                                                                  config.total_steps)
    self.work.make()
    self._writer = tf.summary.create_file_writer(str(self.work.logs / "train"))
    start_step = self.restore()
    if start_step >= config.total_steps:
      logging.info("training already complete (step %d of %d)", start_step, config.total_steps)
    loop = self._compiled_loop()
    iterator = iter(distribution.distribute_dataset(
        self.strategy, lambda shard: self.task.dataset(start_step, shard)))
    rates, started = [], time.time()
    step = saved = start_step
    agree = _stop_agreement(self.strategy)
    self._stop_if_asked(signals, agree, step, saved)  # e.g. a signal during the restore.
    stopped = self.stopped_early()
    while step < last_step and stopped is None:
      epoch_end = (step // config.steps_per_epoch + 1) * config.steps_per_epoch
      num = min(config.steps_per_loop, epoch_end - step, last_step - step)
      if config.checkpoint_every_steps:
        num = min(num, config.checkpoint_every_steps - step % config.checkpoint_every_steps)
      tick = time.time()
      means = {k: float(v) for k, v in loop(iterator, tf.constant(num, tf.int64)).items()}
      elapsed = time.time() - tick
      step = int(self.step.numpy())
      self.last_metrics = means
      loss = means[self.task.metric_names[0]]
      if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"the training loss became {loss} in the {num} steps ending at step {step}; the "
            f"last good checkpoint ({self.latest.latest_checkpoint or 'none'}) is kept. Lower "
            "the learning rate or check the data.")
      rate = num * self.task.examples_per_step / max(elapsed, 1e-9)
      if step - num > start_step or len(rates) > 0:  # The first call includes tracing.
        rates.append(rate)
      self._log_progress(step, means, rate, rates)
      for name, value in means.items():
        self._buffer.append((step, f"train/{name}", value))
      self._buffer.append((step, f"train/{self.task.example_unit}_per_second", rate))
      self._buffer.append((step, "train/learning_rate", self.task.learning_rate()))
      if step % config.steps_per_epoch == 0:
        self._end_epoch(step)
        saved = step
        stopped = self.stopped_early()
      elif (config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0
            or step == last_step):
        self._save(step)
        saved = step
      self._stop_if_asked(signals, agree, step, saved)
    self._writer.flush()
    if stopped is not None:
      best = self.best_record()
      logging.info("early stop after epoch %d of %d: %s has not improved for %d epochs "
                   "(best %.4f at epoch %d)", stopped["epoch"], config.epochs,
                   config.best_metric, config.patience, best[config.best_metric],
                   best["epoch"])
    return {
        "history": self.history,
        "stopped_early_at_epoch": None if stopped is None else stopped["epoch"],
        "best": self.best_record(),
        "steps": int(self.step.numpy()),
        "train_rate_median": float(np.median(rates)) if rates else None,
        "last_metrics": self.last_metrics,
        "train_rate_unit": f"{self.task.example_unit}/s",
        "train_seconds_this_session": time.time() - started,
    }

  def _stop_if_asked(self, signals: preemption.StopSignals, agree, step: int,
                     saved: int) -> None:
    """When a stop signal came (to any worker): checkpoints `step`, unless `saved` (the step
    of the latest checkpoint) is it already, and raises TrainingStopped."""
    signal_number = agree(signals.received)
    if not signal_number:
      return
    name = signal.Signals(signal_number).name
    if saved != step:
      logging.warning("%s received: writing a checkpoint at step %d and stopping", name, step)
      # Mid-epoch too: the input pipeline's position and the RNGs follow from the step, so
      # the rerun resumes to the numbers an uninterrupted run ends with.
      self._save(step)
    else:
      logging.warning("%s received: stopping at step %d, its checkpoint already written",
                      name, step)
    raise preemption.TrainingStopped(signal_number, step, self.latest.latest_checkpoint,
                                     received_here=bool(signals.received))

  def _end_epoch(self, step: int) -> None:
    epoch = step // self.config.steps_per_epoch
    tick = time.time()
    record = {"epoch": epoch, "step": step,
              **{k: float(v) for k, v in self.task.evaluate().items()},
              "eval_seconds": time.time() - tick}
    self.history.append(record)
    metric = self.config.best_metric
    best = self.best_record()
    summary = " ".join(f"{k}={v:.4f}" for k, v in record.items()
                       if k.startswith("auc") and _finite(v))
    logging.info("epoch %d evaluated in %.1fs: %s", epoch, record["eval_seconds"], summary)
    for key, value in record.items():
      if key not in ("epoch", "step") and _finite(value):
        self._buffer.append((step, f"eval/{key}", value))
    self._before_checkpoint()  # Once, for the best checkpoint and the latest alike.
    if metric and best is record:
      self.best.save(checkpoint_number=step)
      logging.info("new best %s=%.4f at epoch %d", metric, record[metric], epoch)
    self._save(step, prepared=True)

  def _before_checkpoint(self) -> None:
    hook = getattr(self.task, "before_checkpoint", None)
    if hook is not None:  # e.g. the GAN's averaged generator's statistics.
      hook()

  def _save(self, step: int, prepared: bool = False) -> None:
    # The history first: a kill between the two writes leaves records past the restored
    # step, which `restore` drops; the other order would lose an epoch's evaluation.
    files.write_json_atomic(self.history_path, self.history)
    if not prepared:
      self._before_checkpoint()
    self.latest.save(checkpoint_number=step)
    with self._writer.as_default():
      for s, name, value in self._buffer:
        tf.summary.scalar(name, value, step=s)
      write_summaries = getattr(self.task, "write_summaries", None)
      if write_summaries is not None:  # e.g. the GAN's sample grids, at checkpoint steps.
        write_summaries(step)
    self._writer.flush()
    self._buffer.clear()

  def _log_progress(self, step, means, rate, rates) -> None:
    config = self.config
    epoch = (step - 1) // config.steps_per_epoch + 1
    typical = float(np.median(rates)) if rates else rate
    steps_per_second = typical / self.task.examples_per_step
    left = (config.total_steps - step) / max(steps_per_second, 1e-9)
    terms = " ".join(f"{k}={v:.4g}" for k, v in means.items())
    logging.info("epoch %d/%d step %d/%d %s | %.0f %s/s | %s left", epoch, config.epochs,
                 step, config.total_steps, terms, rate, self.task.example_unit,
                 _duration(left))


def _stop_agreement(strategy: tf.distribute.Strategy | None):
  """A function: the stop signal received here (0: none) -> the stop signal of the run.

  One process: the signal itself. A multi-worker cluster: every worker's signal (a
  scheduler signals each worker, but not within the same loop call) is SUM-reduced over the
  workers, so that all stop, and write their (collective) checkpoint, at the first loop
  boundary where any of them has one: a worker going on alone would wait in, or fail at,
  the next collective. SIGTERM wins over SIGINT. One small all-reduce per compiled loop
  call, at the same point of the loop on every worker."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return lambda received: received

  @tf.function
  def total(votes):
    shares = strategy.run(tf.identity, args=(votes,))  # Each replica's copy of the votes.
    return strategy.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None)

  def agree(received: int) -> int:
    votes = tf.constant([float(received == s) for s in preemption.STOP_SIGNALS])
    for number, count in zip(preemption.STOP_SIGNALS, total(votes).numpy()):
      if count > 0:
        return int(number)
    return 0

  return agree


def _finite(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
