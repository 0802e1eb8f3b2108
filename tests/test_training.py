"""DVBPR training on the tiny catalog: it runs, resumes exactly, and logs each step once."""

import json

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.training import bpr_task
from dvbpr_tf.training import dvbpr_task
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


def test_resume_continues_step_optimizer_and_sampler(tiny_catalog, tmp_path):
  straight, _, summary = _run(tiny_catalog, tmp_path / "straight", dropout=DROPOUT)
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
