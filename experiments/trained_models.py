"""The trained DVBPR and GAN that design, tailoring and Table IV need.

A model is named by its work dir (`--dvbpr_workdir`, `--gan_workdir`); when none is named,
the model is trained first with the run's preset in `<workdir>/dvbpr` or `<workdir>/gan`, and
reused from there on the next run. Loading rebuilds the task from the work dir's own
`config.json` and restores its best (DVBPR) or latest (GAN) checkpoint.
"""

from __future__ import annotations

import dataclasses
import pathlib

from absl import logging

from dvbpr_tf import config as config_lib
from dvbpr_tf import dvbpr_task
from dvbpr_tf import errors
from dvbpr_tf import gan_task
from dvbpr_tf import trainer as trainer_lib
from dvbpr_tf import workdir as workdir_lib
from experiments import common


def _sub_spec(spec: common.RunSpec, workdir: str, experiment: str) -> common.RunSpec:
  return dataclasses.replace(spec, workdir=workdir, experiment=experiment)


def _trained_config(workdir: pathlib.Path, key: str, catalog) -> dict:
  """The config.json of a trained `key` run, read once; refuses a run of another model, of
  another dataset, or of this dataset at other sizes (rebuilt from other files)."""
  work = workdir_lib.Workdir(workdir)
  if not work.config_path.exists():
    raise errors.UserError(f"{workdir} holds no trained run (no config.json): train one there "
                           "first, or leave the flag unset to train one automatically")
  saved = common.saved_config(work)
  if key not in saved:
    raise errors.UserError(f"{workdir} holds a '{saved.get('model', '?')}' run, not {key}")
  dataset = saved.get("run", {}).get("dataset")
  if dataset and catalog.name.split("/")[0] not in dataset and dataset not in catalog.name:
    raise errors.UserError(
        f"the model in {workdir} was trained on {dataset!r}, not on {catalog.name!r}")
  common.check_same_dataset(work, catalog, saved)
  return saved


def dvbpr(spec: common.RunSpec, catalog, preset_config, workdir: str | None = None):
  """A `DvbprTask` holding the trained DVBPR (its best checkpoint)."""
  from experiments import recommendation  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(workdir) if workdir else spec.work.root / "dvbpr"
  if workdir is None and not (root / "results.json").exists():
    logging.info("training DVBPR first, in %s", root)
    recommendation.run(_sub_spec(spec, str(root), "recommendation"), preset_config,
                       catalog=catalog)
  saved = _trained_config(root, "dvbpr", catalog)
  config = config_lib.from_dict(config_lib.DvbprConfig, saved["dvbpr"])
  task = dvbpr_task.DvbprTask(catalog, config)
  trainer = _trainer(task, root, config.train.epochs)
  if trainer.restore_best() is None and not trainer.restore():
    raise errors.UserError(f"no checkpoint in {root / 'checkpoints'}")
  return task


def gan(spec: common.RunSpec, catalog, preset_config, workdir: str | None = None):
  """A `GanTask` holding the trained GAN (its latest checkpoint)."""
  from experiments import gan as gan_experiment  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(workdir) if workdir else spec.work.root / "gan"
  if workdir is None and not (root / "results.json").exists():
    logging.info("training the GAN first, in %s", root)
    gan_experiment.run(_sub_spec(spec, str(root), "gan"), preset_config, catalog=catalog)
  saved = _trained_config(root, "gan", catalog)
  config = config_lib.from_dict(gan_task.GanTrainConfig, saved["gan"])
  task = gan_task.GanTask(catalog, config)
  trainer = _trainer(task, root, config.epochs, best_metric="")
  if not trainer.restore():
    raise errors.UserError(f"no checkpoint in {root / 'checkpoints'}")
  return task


def _trainer(task, root: pathlib.Path, epochs: int, best_metric: str = "auc_valid"):
  loop = trainer_lib.LoopConfig(epochs=epochs, steps_per_epoch=1, best_metric=best_metric)
  return trainer_lib.Trainer(task, loop, workdir_lib.Workdir(root))


def design_models(spec: common.RunSpec, catalog, dvbpr_config, gan_config,
                  dvbpr_workdir: str | None = None, gan_workdir: str | None = None):
  """(DVBPR task, GAN task, `design.Designer` over both): what design, tailoring, Table IV
  and the eta sweep work with."""
  from dvbpr_tf import design as design_lib  # pylint: disable=g-import-not-at-top
  d_task = dvbpr(spec, catalog, dvbpr_config, dvbpr_workdir)
  g_task = gan(spec, catalog, gan_config, gan_workdir)
  return d_task, g_task, design_lib.Designer(d_task.model, g_task.generator,
                                             g_task.discriminator)
