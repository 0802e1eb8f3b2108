"""Where training runs: a `tf.distribute.Strategy`, the global batch, mixed precision.

Every training loop of the project (DVBPR, the baselines, the GAN) runs under one strategy,
chosen by `DistributionConfig.strategy`:

- `default`: no distribution (one device; what the CPU demo uses);
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per GPU of this machine (or the
  devices named in `devices`);
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine, the
  cluster described by the `TF_CONFIG` environment variable (each worker runs the same
  command).

Global batch semantics. `batch_size` in every preset is the *global* batch: one optimiser step
consumes exactly `batch_size` examples, whatever the number of replicas R. The input pipeline
draws the same global batch as a single device would (the sampler and the shuffles are keyed
on the step, not on the replica) and hands replica r rows [r * B/R, (r + 1) * B/R) of it, so
B must be divisible by R. Each replica returns its *share* of the loss, and the optimiser sums
the replicas' gradients (Keras' all-reduce is a SUM):

- a sum over the batch (the authors' BPR term, eq. 5, and the regularisers of the batch's own
  rows, theta_u of eq. 5) is already additive: each replica sums over its rows;
- a term of the whole model (lambda_1 times the tower's kernels, FM's and VBPR's global
  matrices) is counted once: each replica contributes `replica_share(term)` = term / R;
- a mean over the batch (the LSGAN losses, eq. 7) becomes the global mean when each replica
  contributes its local mean / R (`replica_share` again).

So the gradient of a step, and every logged loss (the trainer SUM-reduces the replicas'
values), equal those of one device with the same global batch. Per-replica batch norm
statistics (the GAN) are the one exception: they are computed over B/R images.

Mixed precision (`mixed_precision=True`) sets Keras' `mixed_float16` policy: float16 compute,
float32 variables, the losses in float32 and dynamic loss scaling (`LossScaleOptimizer`). It
is meant for GPUs; on a CPU float16 is slower, not faster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os

import keras
import tensorflow as tf

from dvbpr_tf.core import errors

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
  """Attributes:
    strategy: `default`, `mirrored` or `multi_worker` (see the module docstring).
    mixed_precision: float16 compute with float32 variables and loss scaling (GPUs).
    virtual_cpus: `mirrored` only: split this machine's CPU into that many logical devices
      and mirror over them (0: every GPU, or the one CPU when there is none). For trying
      and testing the distributed path on a machine without GPUs; it is not faster.
  """

  strategy: str = "default"
  mixed_precision: bool = False
  virtual_cpus: int = 0

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise errors.ConfigError(
          f"--strategy={self.strategy!r} is not known; choose one of {', '.join(STRATEGIES)}")
    if self.virtual_cpus < 0 or self.virtual_cpus == 1:
      raise errors.ConfigError(
          f"--virtual_cpus must be 0 or at least 2, got {self.virtual_cpus}")
    if self.virtual_cpus and self.strategy != "mirrored":
      raise errors.ConfigError("--virtual_cpus needs --strategy=mirrored")


_STRATEGIES: dict[DistributionConfig, tf.distribute.Strategy | None] = {}


def make_strategy(config: DistributionConfig) -> tf.distribute.Strategy | None:
  """The strategy of `config` (None for `default`), made once per process (TensorFlow
  allows one multi-worker strategy per process); sets the mixed-precision policy."""
  keras.mixed_precision.set_global_policy(
      "mixed_float16" if config.mixed_precision else "float32")
  if config not in _STRATEGIES:
    _STRATEGIES[config] = _new_strategy(config)
  return _STRATEGIES[config]


def _new_strategy(config: DistributionConfig) -> tf.distribute.Strategy | None:
  if config.strategy == "default":
    return None
  if config.strategy == "mirrored":
    devices = None
    if config.virtual_cpus:
      cpu = tf.config.list_physical_devices("CPU")[0]
      try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.virtual_cpus)
      except RuntimeError as e:
        raise errors.ConfigError(
            "--virtual_cpus must take effect before TensorFlow starts using the CPU; "
            f"run it in a fresh process ({e})") from e
      devices = [f"/cpu:{k}" for k in range(config.virtual_cpus)]
    return tf.distribute.MirroredStrategy(devices)
  if "TF_CONFIG" not in os.environ:
    raise errors.ConfigError(
        "--strategy=multi_worker needs the cluster in the TF_CONFIG environment variable, "
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\' on the first machine')
  try:
    json.loads(os.environ["TF_CONFIG"])
  except json.JSONDecodeError as e:
    raise errors.ConfigError(f"TF_CONFIG is not valid JSON: {e}") from e
  return tf.distribute.MultiWorkerMirroredStrategy()


def scope(strategy: tf.distribute.Strategy | None):
  """The strategy's variable scope (a no-op context without a strategy)."""
  return strategy.scope() if strategy is not None else contextlib.nullcontext()


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
  return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def worker_id(config: DistributionConfig) -> int | None:
  """None on the process whose files are the run's (one device, a mirrored strategy, the
  chief of a cluster: worker 0 when no `chief` task is named); the task index of any other
  worker of a multi-worker cluster, which writes its own copies elsewhere (checkpoints are
  collective: every worker saves). Read from TF_CONFIG: no strategy is made."""
  if config.strategy != "multi_worker" or "TF_CONFIG" not in os.environ:
    return None
  try:
    cluster_config = json.loads(os.environ["TF_CONFIG"])
    task = cluster_config.get("task", {})
    task_type, task_id = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in cluster_config.get("cluster", {})
  except (ValueError, AttributeError, TypeError) as e:
    raise errors.ConfigError(f"TF_CONFIG is not a cluster description ({e})") from e
  if task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief):
    return None
  return task_id + (1 if has_chief else 0)


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy | None) -> None:
  replicas = num_replicas(strategy)
  if batch_size % replicas:
    raise errors.ConfigError(
        f"the global batch ({batch_size}) must be divisible by the number of replicas "
        f"({replicas}): every replica takes batch_size / replicas examples")


def loss_scaling(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
  """The optimizer, wrapped in dynamic loss scaling when the mixed_float16 policy is on."""
  if keras.mixed_precision.global_policy().name == "mixed_float16":
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def apply_gradients(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape,
                    scaled_loss: tf.Tensor, variables) -> None:
  """One optimiser update from `scaled_loss` = `optimizer.scale_loss(loss)`, computed inside
  `tape` (identity without loss scaling; a LossScaleOptimizer unscales the gradients).
  Under a strategy, Keras sums the replicas' gradients."""
  gradients = tape.gradient(scaled_loss, variables)
  optimizer.apply_gradients(zip(gradients, variables))


# --- Inside a replica ----------------------------------------------------------------------


def _replicas_in_sync() -> int:
  context = tf.distribute.get_replica_context()
  return 1 if context is None else int(context.num_replicas_in_sync)


def replica_share(term: tf.Tensor) -> tf.Tensor:
  """One replica's share of a term counted once per step: term / R (term itself on one
  device or outside a replica), so that the replicas' sum is the term."""
  replicas = _replicas_in_sync()
  return term if replicas == 1 else term / tf.cast(replicas, term.dtype)


def fold_in_replica(key: tf.Tensor) -> tf.Tensor:
  """A stateless random key made distinct per replica (unchanged on one device)."""
  if _replicas_in_sync() == 1:
    return key
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  return tf.random.experimental.stateless_fold_in(key, tf.cast(replica, tf.int64) + 1)


def replica_rows(tensor: tf.Tensor) -> tf.Tensor:
  """This replica's rows of a global-batch tensor [B, ...] (the whole tensor on one device)."""
  replicas = _replicas_in_sync()
  if replicas == 1:
    return tensor
  context = tf.distribute.get_replica_context()
  rows = tf.shape(tensor)[0] // replicas
  start = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
  return tensor[start:start + rows]


# --- The input pipeline's side ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shard:
  """The replicas one input pipeline feeds: replicas [first, first + count) of `replicas`."""

  replicas: int
  first: int
  count: int

  @classmethod
  def from_context(cls, context: tf.distribute.InputContext) -> "Shard":
    replicas, pipelines = context.num_replicas_in_sync, context.num_input_pipelines
    if replicas % pipelines:
      raise errors.ConfigError(f"{replicas} replicas cannot be split evenly over "
                               f"{pipelines} workers")
    count = replicas // pipelines
    return cls(replicas=replicas, first=context.input_pipeline_id * count, count=count)

  def rows_per_replica(self, global_batch: int) -> int:
    if global_batch % self.replicas:
      raise errors.ConfigError(
          f"the global batch ({global_batch}) must be divisible by the number of replicas "
          f"({self.replicas})")
    return global_batch // self.replicas


def split_batches(dataset: tf.data.Dataset, shard: Shard | None,
                  global_batch: int) -> tf.data.Dataset:
  """Turns a dataset of global batches (nests of [B, ...] tensors) into this pipeline's
  per-replica batches, in replica order: for each global batch, the rows of replicas
  first, first + 1, ..., first + count - 1. None: the dataset unchanged."""
  if shard is None:
    return dataset
  rows = shard.rows_per_replica(global_batch)

  def split(batch):
    def take(tensor):
      start = shard.first * rows
      part = tensor[start:start + shard.count * rows]
      inner = tensor.shape[1:]
      shape = ([shard.count, rows] + inner.as_list() if inner.is_fully_defined()
               else tf.concat([[shard.count, rows], tf.shape(tensor)[1:]], 0))
      return tf.reshape(part, shape)
    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(take, batch))

  return dataset.flat_map(split)


def distribute_dataset(strategy: tf.distribute.Strategy | None, dataset_fn):
  """`dataset_fn(shard)` on one device (shard None), or a distributed dataset of it."""
  if strategy is None:
    return dataset_fn(None)
  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(
      lambda context: dataset_fn(Shard.from_context(context)), options)
