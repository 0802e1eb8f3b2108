"""GAN training on the tiny catalog: resume, export reload in plain TensorFlow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.models import gan
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.training import gan_task
from dvbpr_tf.training import trainer as trainer_lib


def _run(catalog, workdir, until_step=None):
  task = gan_task.GanTask(catalog, config_lib.preset("smoke").gan)
  loop = trainer_lib.LoopConfig(epochs=2, steps_per_epoch=3, steps_per_loop=1,
                                checkpoint_every_steps=2, best_metric="")
  summary = trainer_lib.Trainer(task, loop, workdir_lib.Workdir(workdir)).run(until_step)
  return task, summary


def test_training_changes_both_networks_and_resumes_exactly(tiny_catalog, tmp_path):
  fresh = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan)
  straight, summary = _run(tiny_catalog, tmp_path / "straight")
  assert summary["steps"] == 6
  assert all(np.isfinite(v) for v in summary["last_metrics"].values())
  for before, after in ((fresh.generator, straight.generator),
                        (fresh.discriminator, straight.discriminator)):
    assert any(not np.allclose(a.numpy(), b.numpy())
               for a, b in zip(after.trainable_weights, before.trainable_weights))
  _run(tiny_catalog, tmp_path / "resumed", until_step=4)
  resumed, summary = _run(tiny_catalog, tmp_path / "resumed")
  assert summary["steps"] == 6
  for model in ("generator", "discriminator"):
    a, b = getattr(resumed, model), getattr(straight, model)
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):  # BN moving statistics included.
      np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, out = sys.argv[1], sys.argv[2]
    data = np.load(out + "/inputs.npz")
    model = tf.saved_model.load(path)
    made = model.generate(tf.constant(data["z"]), tf.constant(data["category"]))
    scores = model.discriminate(made["images_uint8"], tf.constant(data["category"]))
    try:
      model.generate(tf.constant(data["z"][:1]), tf.constant([99], tf.int64))
      error = None
    except tf.errors.InvalidArgumentError as e:
      error = e.message
    np.savez(out + "/outputs.npz", images=made["images"].numpy(), scores=scores.numpy())
    json.dump({"error": error, "dvbpr_tf_imported": "dvbpr_tf" in sys.modules},
              open(out + "/info.json", "w"))
""")


def test_gan_export_reloads_in_plain_tensorflow(tiny_catalog, tmp_path):
  task = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan)
  network = task.network
  path = export_lib.export_gan(task.generator, task.discriminator, network.num_categories,
                               network.z_dim, tmp_path / "gan")
  z = np.random.default_rng(0).normal(size=(3, network.z_dim)).astype(np.float32)
  category = np.array([0, 3, 9], np.int64)
  np.savez(tmp_path / "inputs.npz", z=z, category=category)
  subprocess.run([sys.executable, "-c", RELOAD, str(path), str(tmp_path)], check=True,
                 capture_output=True, timeout=300)
  out = np.load(tmp_path / "outputs.npz")
  info = json.loads((tmp_path / "info.json").read_text())
  assert not info["dvbpr_tf_imported"]
  expected = task.generator(z, tf.one_hot(category, network.num_categories), training=False)
  np.testing.assert_allclose(out["images"], expected.numpy(), atol=1e-5)
  assert out["scores"].shape == (3,)
  assert "category out of range" in info["error"]


def test_joint_discriminator_batch_scores_real_and_fake_in_one_call(tiny_catalog):
  config = config_lib.override(config_lib.preset("smoke").gan,
                               {"discriminator_batch": "joint"})
  task = gan_task.GanTask(tiny_catalog, config)
  batch = next(iter(task.dataset(0)))
  fake = task.generator(gan.sample_latent(task.network, config.batch_size, seed=0),
                        batch["label"], training=True)
  d_real, d_fake = task._discriminate(batch["image"], fake, batch["label"])
  both = task.discriminator(tf.concat([batch["image"], fake], 0),
                            tf.concat([batch["label"]] * 2, 0), training=True).numpy()
  np.testing.assert_allclose(np.concatenate([d_real, d_fake]), both, rtol=1e-5, atol=1e-6)
  separate = task.discriminator(fake, batch["label"], training=True).numpy()
  assert not np.allclose(d_fake.numpy(), separate)  # Shared batch statistics differ.
  metrics = task.train_step(batch)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_fidelity_with_a_feature_scorer_gives_the_frechet_distance(tiny_catalog):
  class PixelMeans:  # Stands in for the category classifier: 3 features an image.
    def features(self, images):
      return np.asarray(images, np.float32).mean(axis=(1, 2))

  task = gan_task.GanTask(tiny_catalog, config_lib.preset("smoke").gan, PixelMeans())
  fidelity = task.colour_fidelity(per_category=8)
  assert fidelity["frechet_classifier"] > fidelity["frechet_classifier_real_halves"] >= 0
  assert task.colour_fidelity(per_category=8) is fidelity  # Cached for the same step.
