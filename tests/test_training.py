"""DVBPR training on the tiny catalog: it runs, resumes exactly, logs each step once, and
stops at a checkpoint of the step it reached on SIGTERM."""

import json
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.training import bpr_task
from dvbpr_tf.training import dvbpr_task
from dvbpr_tf.training import preemption
from dvbpr_tf.training import trainer as trainer_lib

DROPOUT = 0.5  # The dropout masks must resume exactly too.


def _logged_steps(logdir, tag="train/loss"):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  accumulator = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.TENSORS: 0},
      purge_orphaned_data=False)
  accumulator.Reload()
  return [event.step for event in accumulator.Tensors(tag)]


def _run(catalog, workdir, until_step=None, dropout=0.5):
  config = config_lib.override(config_lib.preset("smoke").dvbpr, {"tower.dropout": dropout})
  task = dvbpr_task.DvbprTask(catalog, config)
  loop = trainer_lib.LoopConfig(epochs=2, steps_per_epoch=4, steps_per_loop=2)
  trainer = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(workdir))
  summary = trainer.run(until_step=until_step)
  return task, trainer, summary


@pytest.fixture(scope="module")
def straight_run(tiny_catalog, tmp_path_factory):
  """The uninterrupted run that the interrupted ones must end like: (task, summary)."""
  task, _, summary = _run(tiny_catalog, tmp_path_factory.mktemp("straight"), dropout=DROPOUT)
  return task, summary


def test_resume_continues_step_optimizer_and_sampler(tiny_catalog, tmp_path, straight_run):
  straight, summary = straight_run
  assert summary["steps"] == 8
  assert [h["epoch"] for h in summary["history"]] == [1, 2]

  first, _, partial = _run(tiny_catalog, tmp_path / "resumed", until_step=6, dropout=DROPOUT)
  assert partial["steps"] == 6 and int(first.optimizer.iterations.numpy()) == 6
  second, trainer, resumed = _run(tiny_catalog, tmp_path / "resumed", dropout=DROPOUT)
  assert resumed["steps"] == 8
  assert int(second.optimizer.iterations.numpy()) == 8
  assert int(second.sampler.position.numpy()) == 8
  assert [h["epoch"] for h in resumed["history"]] == [1, 2]
  # Same batches, same updates: the resumed run ends where the uninterrupted one does, in
  # every weight (a weight left out of the checkpoint would restart from its initial value).
  assert len(second.model.weights) == len(straight.model.weights)
  for resumed_weight, straight_weight in zip(second.model.weights, straight.model.weights):
    np.testing.assert_allclose(resumed_weight.numpy(), straight_weight.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=resumed_weight.path)
  # Every logged step appears once, none missing.
  assert _logged_steps(tmp_path / "resumed" / "logs" / "train") == [2, 4, 6, 8]
  assert _logged_steps(tmp_path / "resumed" / "logs" / "train", "eval/auc_valid") == [4, 8]
  history = json.loads((tmp_path / "resumed" / "checkpoints" / "history.json").read_text())
  assert [h["step"] for h in history] == [4, 8]
  assert trainer.restore_best()["epoch"] in (1, 2)


def _cut_short(checkpoint_prefix):
  """Truncates a checkpoint's data file to half its length (a full disk, a copy cut short)."""
  for data in checkpoint_prefix.parent.glob(checkpoint_prefix.name + ".data-*"):
    os.truncate(data, data.stat().st_size // 2)


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(
    tiny_catalog, tmp_path, straight_run, caplog):
  straight, _ = straight_run
  work = tmp_path / "damaged"
  _run(tiny_catalog, work, until_step=6, dropout=DROPOUT)  # Checkpoints at steps 4 and 6.
  _cut_short(work / "checkpoints" / "latest" / "ckpt-6")
  second, _, resumed = _run(tiny_catalog, work, dropout=DROPOUT)
  assert "checkpoints/latest/ckpt-6 cannot be read (a file is cut short" in caplog.text
  assert "resumed from the previous checkpoint" in caplog.text
  assert resumed["steps"] == 8 and [h["epoch"] for h in resumed["history"]] == [1, 2]
  for resumed_weight, straight_weight in zip(second.model.weights, straight.model.weights):
    np.testing.assert_allclose(resumed_weight.numpy(), straight_weight.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=resumed_weight.path)


def test_no_readable_checkpoint_is_one_error_and_a_damaged_state_file_is_not_a_fresh_start(
    tiny_catalog, tmp_path):
  work = tmp_path / "damaged"
  _run(tiny_catalog, work, until_step=6)
  latest = work / "checkpoints" / "latest"
  (latest / "checkpoint").write_text("model_checkpoint_path: \"ckpt-6")  # Cut short.
  # The state file lists nothing now; the checkpoints on disk are still found.
  task = dvbpr_task.DvbprTask(tiny_catalog, config_lib.preset("smoke").dvbpr)
  trainer = trainer_lib.Trainer(task, trainer_lib.LoopConfig(epochs=2, steps_per_epoch=4),
                                workdir_lib.Workdir(work))
  assert trainer.restore() == 6
  for step in (4, 6):
    _cut_short(latest / f"ckpt-{step}")
  with pytest.raises(trainer_lib.DamagedCheckpointError,
                     match=r"none of the checkpoints in .* can be read .*; delete "):
    trainer.restore()


@pytest.fixture
def sigterm_recorded():
  """SIGTERM's handler for the test: records the calls instead of ending pytest (a signal
  the code under test fails to catch lands here); the old one is put back after."""
  calls = []
  old = signal.signal(signal.SIGTERM, lambda number, frame: calls.append(number))
  yield calls
  signal.signal(signal.SIGTERM, old)


def test_sigterm_stops_at_a_checkpoint_of_that_step_and_the_rerun_ends_the_same(
    tiny_catalog, tmp_path, sigterm_recorded, straight_run):
  straight, _ = straight_run
  config = config_lib.override(config_lib.preset("smoke").dvbpr, {"tower.dropout": DROPOUT})
  task = dvbpr_task.DvbprTask(tiny_catalog, config)
  loop = trainer_lib.LoopConfig(epochs=2, steps_per_epoch=4, steps_per_loop=2)
  trainer = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path / "stopped"))
  learning_rate = task.learning_rate

  def signalled_at_step_6():  # Called on the host after each compiled call.
    if int(trainer.step.numpy()) == 6:
      os.kill(os.getpid(), signal.SIGTERM)
    return learning_rate()

  task.learning_rate = signalled_at_step_6
  with pytest.raises(preemption.TrainingStopped) as stopped:
    trainer.run()
  # Mid-epoch 2, where no checkpoint is due (epoch ends only): one written at step 6.
  assert (stopped.value.step, stopped.value.signal_name, stopped.value.exit_code) == (
      6, "SIGTERM", 143)
  assert stopped.value.checkpoint_path.endswith("ckpt-6")
  assert trainer.latest.latest_checkpoint == stopped.value.checkpoint_path
  assert str(stopped.value) == (f"stopped by SIGTERM at step 6: checkpoint written "
                                f"({stopped.value.checkpoint_path}); rerun the same command "
                                "to resume")
  assert sigterm_recorded == []  # Caught by the trainer, whose handler is gone since:
  os.kill(os.getpid(), signal.SIGTERM)
  assert sigterm_recorded == [signal.SIGTERM]

  resumed, trainer, summary = _run(tiny_catalog, tmp_path / "stopped", dropout=DROPOUT)
  assert summary["steps"] == 8 and int(resumed.sampler.position.numpy()) == 8
  for resumed_weight, straight_weight in zip(resumed.model.weights, straight.model.weights):
    np.testing.assert_allclose(resumed_weight.numpy(), straight_weight.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=resumed_weight.path)
  # The stop flushed the history and the scalars of its steps, and nothing is logged twice.
  assert _logged_steps(tmp_path / "stopped" / "logs" / "train") == [2, 4, 6, 8]
  assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_stop_signals_record_once_then_fall_back_and_leave_ignored_signals_alone(
    sigterm_recorded):
  old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)  # As under nohup.
  try:
    with preemption.StopSignals() as signals:
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      os.kill(os.getpid(), signal.SIGINT)  # Ignored: no stop.
      assert signals.received == 0
      os.kill(os.getpid(), signal.SIGTERM)
      assert (signals.received, sigterm_recorded) == (signal.SIGTERM, [])
      os.kill(os.getpid(), signal.SIGTERM)  # The second: the handler from before.
      assert sigterm_recorded == [signal.SIGTERM]
  finally:
    signal.signal(signal.SIGINT, old_sigint)
  os.kill(os.getpid(), signal.SIGTERM)
  assert sigterm_recorded == [signal.SIGTERM] * 2  # Put back on leaving.


def test_sigterm_outside_a_training_loop_raises_stopped_once(sigterm_recorded):
  with pytest.raises(preemption.Stopped) as stopped:
    with preemption.raise_on_sigterm():
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(5)  # Not reached: the handler raises first.
  assert (stopped.value.exit_code, str(stopped.value)) == (
      143, "stopped by SIGTERM: what was saved is kept; rerun the same command to resume "
      "from the last checkpoint")
  os.kill(os.getpid(), signal.SIGTERM)
  assert sigterm_recorded == [signal.SIGTERM]  # The handler from before, put back.


def test_checkpoint_holds_every_weight(tiny_catalog, tmp_path):
  task = dvbpr_task.DvbprTask(tiny_catalog, config_lib.preset("smoke").dvbpr)
  path = tf.train.Checkpoint(model=task.model).write(str(tmp_path / "ckpt"))
  saved = [name for name, _ in tf.train.list_variables(path) if "OPTIMIZER" not in name
           and name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
  assert len(saved) == len(task.model.weights), saved


def test_divergence_stops_with_the_step_named(tiny_catalog, tmp_path):
  config = config_lib.override(config_lib.preset("smoke").dvbpr,
                               {"optimizer.learning_rate": 1e30})
  task = dvbpr_task.DvbprTask(tiny_catalog, config)
  loop = trainer_lib.LoopConfig(epochs=50, steps_per_epoch=4, steps_per_loop=2)
  with pytest.raises(trainer_lib.TrainingDivergedError, match="at step"):
    trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path)).run()


def test_learns_on_the_tiny_catalog(tiny_catalog, tmp_path):
  """A few hundred steps lift validation AUC clearly above random."""
  config = config_lib.override(config_lib.preset("smoke").dvbpr,
                               {"tower.dropout": 0.0, "train.sampled_negatives": 0})
  task = dvbpr_task.DvbprTask(tiny_catalog, config)
  before = task.evaluate()["auc_valid"]
  loop = trainer_lib.LoopConfig(epochs=1, steps_per_epoch=300, steps_per_loop=100)
  summary = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path)).run()
  after = summary["history"][-1]["auc_valid"]
  assert after > 0.6 and after > before + 0.05, (before, after)


def test_cosine_schedule_against_the_closed_form():
  constant = config_lib.OptimizerConfig(learning_rate=2e-3)
  assert bpr_task.learning_rate(constant, None) == 2e-3
  schedule = bpr_task.learning_rate(
      config_lib.OptimizerConfig(learning_rate=2e-3, schedule="cosine"), 100)
  for step in (0, 25, 50, 99, 100, 150):
    expected = 2e-3 * 0.5 * (1 + np.cos(np.pi * min(step, 100) / 100))
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)
  with pytest.raises(ValueError, match="total steps"):
    bpr_task.learning_rate(config_lib.OptimizerConfig(schedule="cosine"), None)


def test_patience_stops_after_that_many_epochs_without_improvement_and_a_rerun_stays_stopped(
    tiny_catalog, tmp_path):
  from dvbpr_tf.baselines import recommenders  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.training import pairwise_task  # pylint: disable=g-import-not-at-top

  def make_trainer():
    model, sampler = recommenders.build_pairwise("bpr_mf", tiny_catalog, dim=4, reg=0.01)
    task = pairwise_task.PairwiseTask(model, tiny_catalog, batch_size=16, learning_rate=1e-3,
                                      sampler=sampler, sampled_negatives=0)
    scripted = iter([0.6, 0.7, 0.65, 0.69, 0.95, 0.96])  # Best at epoch 2, then 2 worse.
    task.evaluate = lambda per_user=False: {"auc_valid": next(scripted)}
    loop = trainer_lib.LoopConfig(epochs=6, steps_per_epoch=2, steps_per_loop=2, patience=2)
    return trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path))

  summary = make_trainer().run()
  assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
  assert summary["stopped_early_at_epoch"] == 4 and summary["best"]["epoch"] == 2
  assert summary["steps"] == 8
  again = make_trainer().run()  # Resumes at step 8, sees the exhausted patience, trains nothing.
  assert again["steps"] == 8 and again["stopped_early_at_epoch"] == 4
  assert len(again["history"]) == 4


def _four_steps(task, tmp_path, jit):
  task.evaluate = lambda per_user=False: {}
  loop = trainer_lib.LoopConfig(epochs=1, steps_per_epoch=4, steps_per_loop=2, jit_compile=jit,
                                best_metric="")
  summary = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(tmp_path / str(jit))).run()
  return summary["last_metrics"]


@pytest.mark.parametrize("model", ["bpr_mf", "bpr_mf_tape", "warp", "fm", "dvbpr"])
def test_xla_steps_train_to_the_same_weights(tiny_catalog, tmp_path, model):
  """Without random draws in the step (DVBPR without dropout; WARP's candidates are drawn by
  `prepare_batch`, outside the XLA cluster), XLA gives the plain step's losses and weights
  up to float rounding; BPR-MF by its fast step and by GradientTape + SGD, FM by Adam."""
  from dvbpr_tf.baselines import recommenders  # pylint: disable=g-import-not-at-top
  from dvbpr_tf.training import pairwise_task  # pylint: disable=g-import-not-at-top

  def make():
    if model == "dvbpr":
      return dvbpr_task.DvbprTask(tiny_catalog, config_lib.override(
          config_lib.preset("smoke").dvbpr, {"tower.dropout": 0.0}))
    method = model.replace("_tape", "")
    features = np.random.default_rng(0).normal(size=(tiny_catalog.num_items, 5))
    net, sampler = recommenders.build_pairwise(method, tiny_catalog, features, dim=4, reg=0.01)
    return pairwise_task.PairwiseTask(net, tiny_catalog, batch_size=16, learning_rate=0.01,
                                      algorithm="adam" if method == "fm" else "sgd",
                                      sampler=sampler, sampled_negatives=0,
                                      fused_sgd=not model.endswith("_tape"))

  plain, fast = make(), make()
  if model != "dvbpr":  # The fast step where it applies: SGD on BPR-MF and WARP.
    assert plain.fused_sgd == (model in ("bpr_mf", "warp"))
  a, b = _four_steps(plain, tmp_path, False), _four_steps(fast, tmp_path, True)
  for key in a:
    assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
  for x, y in zip(plain.model.trainable_variables, fast.model.trainable_variables):
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-5)


def test_xla_gan_step_runs(tiny_catalog, tmp_path):
  """The GAN's step draws z inside it: under XLA another stream, so finite losses only."""
  from dvbpr_tf.training import gan_task  # pylint: disable=g-import-not-at-top
  metrics = _four_steps(gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan),
                        tmp_path, True)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
