"""The trained DVBPR and GAN that design, tailoring and Table IV need.

A model is named by its work dir (`--dvbpr_workdir`, `--gan_workdir`); when none is named,
the model is trained first with the run's preset in `<workdir>/dvbpr` or `<workdir>/gan`, and
reused from there on the next run. Loading rebuilds the networks alone from the work dir's own
`config.json` and restores their weights from its best (DVBPR) or latest (GAN) checkpoint.
"""

from __future__ import annotations

import dataclasses
import pathlib

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.models import dvbpr as dvbpr_lib
from dvbpr_tf.models import gan as gan_lib
from dvbpr_tf.training import dvbpr_task
from dvbpr_tf.training import gan_task
from dvbpr_tf.training import trainer as trainer_lib
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


@dataclasses.dataclass
class TrainedDvbpr:
  """A trained DVBPR, restored for use (no optimizer, sampler or evaluator)."""

  model: dvbpr_lib.Dvbpr
  config: config_lib.DvbprConfig
  catalog: object

  def user_vectors(self) -> np.ndarray:
    return self.model.all_user_vectors().numpy()

  def item_vectors(self) -> np.ndarray:
    """Phi of every catalog item, [num_items, K] (the images decoded on the way)."""
    table = input_pipeline.ImageTable.from_config(self.catalog.jpegs, self.config.pipeline)
    embed = tf.function(lambda images: self.model.item_embeddings(images, False),
                        reduce_retracing=True)
    return evaluator.embed_items(embed, table, self.config.train.eval_batch_size)


@dataclasses.dataclass
class TrainedGan:
  """A trained conditional GAN, restored for use."""

  generator: gan_lib.Generator
  discriminator: gan_lib.Discriminator

  @property
  def network(self):
    return self.generator.config


def dvbpr(spec: common.RunSpec, catalog, preset_config, workdir: str | None = None
          ) -> TrainedDvbpr:
  """The trained DVBPR (its best checkpoint)."""
  from experiments import recommendation  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(workdir) if workdir else spec.work.root / "dvbpr"
  if workdir is None and not (root / "results.json").exists():
    logging.info("training DVBPR first, in %s", root)
    recommendation.run(_sub_spec(spec, str(root), "recommendation"), preset_config,
                       catalog=catalog)
  saved = _trained_config(root, "dvbpr", catalog)
  config = config_lib.from_dict(config_lib.DvbprConfig, saved["dvbpr"])
  model = dvbpr_task.build_model(catalog, config)
  trainer_lib.restore_model(workdir_lib.Workdir(root), "best", model=model)
  return TrainedDvbpr(model, config, catalog)


def gan(spec: common.RunSpec, catalog, preset_config, workdir: str | None = None
        ) -> TrainedGan:
  """The trained GAN (its latest checkpoint)."""
  from experiments import gan as gan_experiment  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(workdir) if workdir else spec.work.root / "gan"
  if workdir is None and not (root / "results.json").exists():
    logging.info("training the GAN first, in %s", root)
    gan_experiment.run(_sub_spec(spec, str(root), "gan"), preset_config, catalog=catalog)
  saved = _trained_config(root, "gan", catalog)
  config = config_lib.from_dict(config_lib.GanTrainConfig, saved["gan"])
  generator, discriminator = gan_task.build_networks(catalog, config)
  # The moving-average generator when the run kept one (gan_task.inference_key).
  trainer_lib.restore_model(workdir_lib.Workdir(root), "latest", discriminator=discriminator,
                            **{gan_task.inference_key(config): generator})
  return TrainedGan(generator, discriminator)


def design_models(spec: common.RunSpec, catalog, dvbpr_config, gan_config,
                  dvbpr_workdir: str | None = None, gan_workdir: str | None = None):
  """(trained DVBPR, trained GAN, `design.Designer` over both): what design, tailoring,
  Table IV and the eta sweep work with."""
  from dvbpr_tf.design import designer as design_lib  # pylint: disable=g-import-not-at-top
  d_task = dvbpr(spec, catalog, dvbpr_config, dvbpr_workdir)
  g_task = gan(spec, catalog, gan_config, gan_workdir)
  return d_task, g_task, design_lib.Designer(d_task.model, g_task.generator,
                                             g_task.discriminator)
