"""Training under tf.distribute: the global batch split over replicas gives the same step.

The strategies run for real: `MirroredStrategy` over two logical CPU devices, and
`MultiWorkerMirroredStrategy` as two worker processes on localhost talking over gRPC. Each
run is the real command (`python -m experiments.main`) and the check compares every variable
of its final checkpoint with a one-device run of the same global batch and seed. Dropout is
set to 0: a dropout mask is drawn per replica, so with dropout the runs are equally valid but
not equal.
"""

import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from dvbpr_tf.core import distribution
from dvbpr_tf.core import errors
from tests.conftest import REPO

# --- The pieces, in process -----------------------------------------------------------------


def _global_batches(count=3, rows=8):
  return tf.data.Dataset.range(count).map(lambda b: {
      "user": tf.range(rows, dtype=tf.int64) + 100 * b,
      "image": tf.reshape(tf.range(rows * 2, dtype=tf.int64), [rows, 2]) + 100 * b})


def test_split_batches_deals_each_global_batch_to_the_replicas_in_order():
  # Worker 1 of 2, two replicas each: replicas 2 and 3 of 4 take rows 4-5 and 6-7.
  shard = distribution.Shard(replicas=4, first=2, count=2)
  parts = list(distribution.split_batches(_global_batches(), shard, 8).as_numpy_iterator())
  assert len(parts) == 6
  np.testing.assert_array_equal(parts[0]["user"], [4, 5])
  np.testing.assert_array_equal(parts[1]["user"], [6, 7])
  np.testing.assert_array_equal(parts[2]["user"], [104, 105])
  np.testing.assert_array_equal(parts[1]["image"], [[12, 13], [14, 15]])
  assert parts[0]["image"].shape == (2, 2)


def test_the_shards_of_all_workers_rebuild_the_global_batch():
  full = list(_global_batches().as_numpy_iterator())
  per_worker = [list(distribution.split_batches(
      _global_batches(), distribution.Shard(replicas=2, first=w, count=1), 8)
                     .as_numpy_iterator()) for w in range(2)]
  for b, batch in enumerate(full):
    rebuilt = np.concatenate([per_worker[w][b]["user"] for w in range(2)])
    np.testing.assert_array_equal(rebuilt, batch["user"])


def test_no_shard_leaves_the_dataset_alone_and_a_bad_batch_is_refused():
  same = list(distribution.split_batches(_global_batches(), None, 8).as_numpy_iterator())
  assert same[0]["user"].shape == (8,)
  with pytest.raises(errors.ConfigError, match="divisible by the number of replicas"):
    distribution.split_batches(_global_batches(), distribution.Shard(3, 0, 3), 8)


def test_shard_from_input_context():
  context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                       num_replicas_in_sync=4)
  assert distribution.Shard.from_context(context) == distribution.Shard(4, 2, 2)


def test_replica_helpers_are_the_identity_on_one_device():
  term = tf.constant(6.0)
  assert float(distribution.replica_share(term)) == 6.0
  rows = tf.range(8)
  np.testing.assert_array_equal(distribution.replica_rows(rows).numpy(), np.arange(8))
  key = tf.constant([1, 2], tf.int64)
  np.testing.assert_array_equal(distribution.fold_in_replica(key).numpy(), [1, 2])


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "tpu"}, "--strategy='tpu' is not known"),
    ({"strategy": "mirrored", "virtual_cpus": 1}, "--virtual_cpus must be 0 or at least 2"),
    ({"virtual_cpus": 2}, "--virtual_cpus needs --strategy=mirrored"),
])
def test_bad_distribution_config_names_the_flag(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message.replace("(", r"\(")):
    distribution.DistributionConfig(**kwargs)


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(errors.ConfigError, match="TF_CONFIG"):
    distribution.make_strategy(distribution.DistributionConfig(strategy="multi_worker"))


def test_global_batch_must_divide():
  distribution.check_global_batch(8, None)
  with pytest.raises(errors.ConfigError, match="divisible"):
    distribution.check_global_batch(7, types.SimpleNamespace(num_replicas_in_sync=2))


# --- The real command under each strategy ------------------------------------------------------


def _command(*args):
  return [sys.executable, "-m", "experiments.main", *args]


def _env(**extra):
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _checkpoint(workdir) -> dict:
  path = tf.train.latest_checkpoint(str(workdir / "checkpoints" / "latest"))
  assert path, f"no checkpoint in {workdir}"
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if "OBJECT_GRAPH" not in k}


def _assert_same_variables(one, other, atol=1e-5):
  a, b = _checkpoint(one), _checkpoint(other)
  assert set(a) == set(b)
  assert len(a) > 20  # The tower's kernels, theta, Adam's moments, the step, the sampler.
  for key in a:
    np.testing.assert_allclose(np.asarray(b[key], np.float64), np.asarray(a[key], np.float64),
                               atol=atol, rtol=1e-4, err_msg=key)


def _flags(tiny_data_dir, workdir, *extra):
  return ["--experiment=recommendation", "--preset=smoke", "--dropout=0",
          f"--data_dir={tiny_data_dir}", f"--workdir={workdir}", *extra]


@pytest.fixture(scope="module")
def one_device_run(tiny_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one_device") / "run"
  done = subprocess.run(_command(*_flags(tiny_data_dir, workdir)), cwd=REPO, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return workdir


def test_mirrored_over_two_devices_equals_one_device(tiny_data_dir, one_device_run, tmp_path):
  workdir = tmp_path / "mirrored"
  done = subprocess.run(
      _command(*_flags(tiny_data_dir, workdir, "--strategy=mirrored", "--virtual_cpus=2")),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  _assert_same_variables(one_device_run, workdir)
  one = json.loads((one_device_run / "results.json").read_text())
  two = json.loads((workdir / "results.json").read_text())
  assert two["auc_test"] == pytest.approx(one["auc_test"], abs=1e-3)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_workers_equal_one_worker(tiny_data_dir, one_device_run, tmp_path):
  workdir = tmp_path / "multi_worker"
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  workers = [
      subprocess.Popen(
          _command(*_flags(tiny_data_dir, workdir, "--strategy=multi_worker")), cwd=REPO,
          env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}})),
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for index in range(2)]
  outputs = []
  for worker in workers:
    try:
      outputs.append(worker.communicate(timeout=300))
    except subprocess.TimeoutExpired:
      for w in workers:
        w.kill()
      raise
  for worker, (_, stderr) in zip(workers, outputs):
    assert worker.returncode == 0, stderr[-3000:]
  # Worker 0 is the chief: the run's files are its; worker 1 keeps its own copies.
  assert (workdir / "results.json").exists()
  assert (workdir / "workers" / "1" / "results.json").exists()
  _assert_same_variables(one_device_run, workdir)
  _assert_same_variables(one_device_run, workdir / "workers" / "1")


def test_gan_and_a_baseline_train_mirrored_and_mixed_precision_runs(tiny_data_dir, tmp_path):
  gan = subprocess.run(
      _command("--experiment=gan", "--preset=smoke", f"--data_dir={tiny_data_dir}",
               f"--workdir={tmp_path / 'gan'}", "--strategy=mirrored", "--virtual_cpus=2",
               # The moving-average generator updates under the strategy too.
               "--params_override=gan.generator_ema=0.9"),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert gan.returncode == 0, gan.stderr[-3000:]
  losses = json.loads((tmp_path / "gan" / "results.json").read_text())
  assert all(np.isfinite(v) for v in losses["final_losses"].values())

  mixed = subprocess.run(
      _command(*_flags(tiny_data_dir, tmp_path / "mixed", "--mixed_precision")),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert mixed.returncode == 0, mixed.stderr[-3000:]
  assert 0.0 <= json.loads((tmp_path / "mixed" / "results.json").read_text())["auc_test"] <= 1
