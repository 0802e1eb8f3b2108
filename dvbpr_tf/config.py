"""Configuration of DVBPR runs: frozen dataclasses and named presets.

Presets (`dvbpr_preset`):
- `authors`: the authors' code: CNN-F at 224x224, K = 100, Adam 1e-4, batch 128, 20 epochs,
  lambda_1 = 1e-3, lambda_2 = 1.0, dropout 0.5.
- `paper`: the authors' code with what the paper states differently: K = 50.
- `demo`: the default run on the embedded data, minutes on 2 CPU cores: 64x64 images, a
  quarter-width tower; see `demo` below for what else changes and why.
- `smoke`: seconds, for tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from dvbpr_tf import cnn_f
from dvbpr_tf import errors
from dvbpr_tf import input_pipeline


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Adam, with TF1's epsilon as the authors' `tf.train.AdamOptimizer`."""

  learning_rate: float = 1e-4
  beta_1: float = 0.9
  beta_2: float = 0.999
  epsilon: float = 1e-8


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Attributes:
    epochs: passes; an epoch is `num_train // batch_size` steps (the authors' definition).
    steps_per_epoch: overrides that definition when > 0 (for smoke runs).
    steps_per_loop: steps per compiled call and per progress line.
    checkpoint_every_steps: extra checkpoints inside an epoch (0: epoch ends only).
    eval_batch_size: images per batch when embedding the catalog.
    sampled_negatives: negatives of the authors' sampled AUC (100).
    projector_items: items written for TensorBoard's embedding projector.
    run_eagerly: debug switch.
  """

  epochs: int = 20
  steps_per_epoch: int = 0
  steps_per_loop: int = 50
  checkpoint_every_steps: int = 0
  eval_batch_size: int = 256
  sampled_negatives: int = 100
  projector_items: int = 2000
  run_eagerly: bool = False


@dataclasses.dataclass(frozen=True)
class DvbprConfig:
  """Everything a DVBPR run needs besides the data."""

  tower: cnn_f.TowerConfig = cnn_f.TowerConfig()
  pipeline: input_pipeline.PipelineConfig = input_pipeline.PipelineConfig(image_size=224)
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainConfig = TrainConfig()
  weight_decay: float = 1e-3  # lambda_1, on the 8 kernels
  theta_decay: float = 1.0  # lambda_2, on the batch's theta_u rows

  def __post_init__(self):
    if self.tower.input_size != self.pipeline.image_size:
      raise errors.ConfigError(
          f"the tower's input size ({self.tower.input_size}) and the pipeline's image size "
          f"({self.pipeline.image_size}) differ; set both with --image_size")
    if self.tower.embedding_dim < 1:
      raise errors.ConfigError(
          f"--embedding_dim (K) must be at least 1, got {self.tower.embedding_dim}")
    if not 0.0 <= self.tower.dropout < 1.0:
      raise errors.ConfigError(f"--dropout must be in [0, 1), got {self.tower.dropout}")
    if self.optimizer.learning_rate <= 0:
      raise errors.ConfigError(
          f"--learning_rate must be positive, got {self.optimizer.learning_rate}")
    if self.weight_decay < 0 or self.theta_decay < 0:
      raise errors.ConfigError("--weight_decay and --theta_decay must be >= 0")
    if self.train.epochs < 1:
      raise errors.ConfigError(f"--epochs must be at least 1, got {self.train.epochs}")


def _authors() -> DvbprConfig:
  return DvbprConfig()


def _paper() -> DvbprConfig:
  return override(_authors(), {"tower.embedding_dim": 50})


def _demo() -> DvbprConfig:
  # 64x64 images (the embedded data are stored at 64) and a quarter-width tower: about
  # 1.6 M parameters instead of 70.8 M, so 20 epochs of the demo data run in minutes on a
  # CPU. The demo data have ~15k training pairs (117 steps an epoch) where Amazon Fashion has
  # ~384k (3,000 steps): at the authors' 1e-4 the tower would see 25x fewer updates, so the
  # demo's learning rate is 1e-3.
  return DvbprConfig(
      tower=cnn_f.TowerConfig(embedding_dim=100, input_size=64, width_multiplier=0.25),
      pipeline=input_pipeline.PipelineConfig(image_size=64, batch_size=128),
      optimizer=OptimizerConfig(learning_rate=1e-3),
      train=TrainConfig(epochs=20, steps_per_loop=39, projector_items=2000))


def _smoke() -> DvbprConfig:
  return DvbprConfig(
      tower=cnn_f.TowerConfig(embedding_dim=10, input_size=32, width_multiplier=0.125),
      pipeline=input_pipeline.PipelineConfig(image_size=32, batch_size=32),
      optimizer=OptimizerConfig(learning_rate=1e-3),
      train=TrainConfig(epochs=2, steps_per_epoch=4, steps_per_loop=2, eval_batch_size=64,
                        projector_items=64))


DVBPR_PRESETS = {"smoke": _smoke, "demo": _demo, "paper": _paper, "authors": _authors}


def dvbpr_preset(name: str) -> DvbprConfig:
  if name not in DVBPR_PRESETS:
    raise errors.ConfigError(
        f"unknown preset {name!r}; presets: {', '.join(DVBPR_PRESETS)}")
  return DVBPR_PRESETS[name]()


def override(config, changes: Mapping[str, Any]):
  """A copy of a (nested) frozen config with dotted fields replaced:
  `override(c, {"tower.embedding_dim": 50, "weight_decay": 0.0})`."""
  nested: dict[str, dict[str, Any]] = {}
  top: dict[str, Any] = {}
  for key, value in changes.items():
    head, _, rest = key.partition(".")
    if not any(f.name == head for f in dataclasses.fields(config)):
      raise errors.ConfigError(f"{type(config).__name__} has no field {head!r}")
    if rest:
      nested.setdefault(head, {})[rest] = value
    else:
      top[head] = value
  for head, sub in nested.items():
    top[head] = override(getattr(config, head), sub)
  return dataclasses.replace(config, **top)


def as_dict(config) -> dict:
  return dataclasses.asdict(config)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
  """How the baselines of Table III are trained and grid-searched.

  The paper grid-searches the regulariser in {0, 0.001, 0.01, 0.1, 1, 10, 30} and K in
  {10, 30, 50} on validation AUC for WARP, BPR-MF, FM and VBPR (its `paper` grid). It trained
  WARP and FM with LightFM and VBPR with its authors' code; here every model trains with Adam
  on the same sampler, summed BPR (or WARP) loss and the same evaluation as DVBPR.

  Attributes:
    regs, dims: the grid.
    batch_size, learning_rate, epochs, steps_per_epoch (0: training interactions / batch),
      steps_per_loop: training of each grid point.
    warp_max_sampled: negatives WARP draws per positive before giving up (LightFM's 10).
    features: the pre-trained feature source of VisRank, FM and VBPR
      (see `features.feature_source_from_name`).
  """

  regs: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 30.0)
  dims: tuple[int, ...] = (10, 30, 50)
  batch_size: int = 128
  learning_rate: float = 1e-3
  epochs: int = 20
  steps_per_epoch: int = 0
  steps_per_loop: int = 50
  warp_max_sampled: int = 10
  features: str = "category_cnn"

  def __post_init__(self):
    if not self.regs or not self.dims:
      raise errors.ConfigError("the baseline grid needs at least one reg and one dim")
    if min(self.dims) < 1 or min(self.regs) < 0:
      raise errors.ConfigError("grid dims must be >= 1 and regs >= 0")

  def grid_description(self) -> str:
    regs = ", ".join(f"{r:g}" for r in self.regs)
    dims = ", ".join(str(d) for d in self.dims)
    return f"reg in {{{regs}}} x K in {{{dims}}}, {self.epochs} epochs each"


BASELINE_PRESETS = {
    "smoke": lambda: BaselineConfig(regs=(0.01,), dims=(10,), batch_size=32, epochs=2,
                                    steps_per_epoch=5, steps_per_loop=5),
    "demo": lambda: BaselineConfig(regs=(0.001, 0.1, 10.0), dims=(10, 50), epochs=10),
    "paper": BaselineConfig,
    "authors": BaselineConfig,
}


def baseline_preset(name: str) -> BaselineConfig:
  if name not in BASELINE_PRESETS:
    raise errors.ConfigError(
        f"unknown preset {name!r}; presets: {', '.join(BASELINE_PRESETS)}")
  return BASELINE_PRESETS[name]()


def from_dict(cls, values: Mapping[str, Any]):
  """Rebuilds a (nested) frozen config dataclass from `as_dict` output (e.g. config.json)."""
  import typing  # pylint: disable=g-import-not-at-top
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for field in dataclasses.fields(cls):
    if field.name not in values:
      continue
    value, kind = values[field.name], hints.get(field.name)
    if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
      value = from_dict(kind, value)
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[field.name] = value
  return cls(**kwargs)
