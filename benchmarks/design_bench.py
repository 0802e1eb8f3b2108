"""Benchmark 4: preference maximisation (eqs. 9-11) with m starts as one batch against m
sequential single-start runs.

A: `Designer.synthesize` with `num_starts = m` (64, the paper's m): every start follows its
   own Adam path, all in one batch.
B: `Designer.synthesize` with one start, called m times (the same number of start-steps).

Rate: start-steps/s (m x steps / seconds). Untrained, randomly initialised networks: the
speed does not depend on the weights. Full size: the demo presets' networks (GAN 64x64 at half
width, CNN-F at 64x64 at quarter width, K = 100).
"""

from __future__ import annotations

import dataclasses
import time

import keras

from benchmarks import common
from dvbpr_tf.design import designer as design
from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import dvbpr
from dvbpr_tf.models import gan

NAME = "design"
TITLE = "Design: preference maximisation, m starts in one batch vs m sequential runs"


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    gan_size, gan_width, z_dim, num_categories: the GAN (G and D).
    tower_size, tower_width, embedding_dim: the CNN-F tower of the recommender.
    num_users: rows of theta.
    num_starts: m.
    steps: Adam steps per start.
    repeats: A/B pairs measured.
    seed: weights and starts.
  """

  gan_size: int = 64
  gan_width: float = 0.5
  z_dim: int = 256
  num_categories: int = 6
  tower_size: int = 64
  tower_width: float = 0.25
  embedding_dim: int = 100
  num_users: int = 8
  num_starts: int = 64
  steps: int = 10
  repeats: int = 3
  seed: int = 0


SIZES = {
    "tiny": Config(gan_size=32, gan_width=0.125, z_dim=16, num_categories=3, tower_size=32,
                   tower_width=0.125, embedding_dim=8, num_starts=16, steps=3, repeats=2),
    "full": Config(),
}


def designer(config: Config) -> design.Designer:
  """A designer over untrained networks of the configured sizes."""
  gan_config = gan.GanConfig(image_size=config.gan_size, z_dim=config.z_dim,
                             num_categories=config.num_categories,
                             width_multiplier=config.gan_width)
  generator = gan.Generator(gan_config, seed=config.seed).build_for_input()
  discriminator = gan.Discriminator(gan_config, seed=config.seed + 1).build_for_input()
  keras.utils.set_random_seed(config.seed)
  model = dvbpr.Dvbpr(config.num_users, cnn_f.TowerConfig(
      embedding_dim=config.embedding_dim, input_size=config.tower_size,
      width_multiplier=config.tower_width)).build_for_input()
  return design.Designer(model, generator, discriminator)


def run(config: Config) -> common.BenchmarkResult:
  """Measures batched against sequential preference maximisation."""
  started = time.perf_counter()
  maker = designer(config)
  batched = design.DesignConfig(num_starts=config.num_starts, steps=config.steps, top_k=1,
                                seed=config.seed)
  single = dataclasses.replace(batched, num_starts=1)
  tick = time.perf_counter()
  maker.synthesize(0, 0, batched)  # Traces the m-row ascent.
  maker.synthesize(0, 0, single)  # Traces the one-row ascent.
  tracing_seconds = time.perf_counter() - tick
  start_steps = config.num_starts * config.steps

  def one_batch() -> float:
    return start_steps / common.timed(lambda: maker.synthesize(1, 1, batched))

  def sequential() -> float:
    return start_steps / common.timed(lambda: [
        maker.synthesize(1, 1, dataclasses.replace(single, seed=k))
        for k in range(config.num_starts)])

  batch_rates, sequential_rates = common.interleaved([one_batch, sequential], config.repeats)
  unit = "start-steps/s"
  row = common.compare(
      NAME, common.Rate(f"m={config.num_starts} in one batch", unit, tuple(batch_rates)),
      common.Rate(f"{config.num_starts} runs of m=1", unit, tuple(sequential_rates)), None,
      note=f"{config.steps} Adam steps per start; GAN {config.gan_size}px x{config.gan_width:g}, "
           f"tower {config.tower_size}px x{config.tower_width:g}")
  details = {"tracing_seconds": tracing_seconds,
             "ascents_compiled": sorted(maker._ascents)}  # pylint: disable=protected-access
  return common.BenchmarkResult(NAME, TITLE, (row,), dataclasses.asdict(config), details,
                                time.perf_counter() - started)
