"""The SavedModel export, reloaded in a separate process that imports only TensorFlow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from dvbpr_tf.data import input_pipeline
from dvbpr_tf.models import cnn_f
from dvbpr_tf.models import dvbpr
from dvbpr_tf.serving import export as export_lib

RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, out = sys.argv[1], sys.argv[2]
    data = np.load(out + "/inputs.npz")
    model = tf.saved_model.load(path)
    result = {
        "embedding": model.item_embedding(tf.constant(data["images"])).numpy(),
        "score": model.score(tf.constant(data["users"]), tf.constant(data["images"])).numpy(),
    }
    rec = model.recommend(tf.constant([0, 1, 2], tf.int64), tf.constant(4, tf.int32))
    result["rec_items"] = rec["item_ids"].numpy()
    result["rec_scores"] = rec["scores"].numpy()
    result["rec_sources"] = rec["source_ids"].numpy().astype(str)
    padded = model.recommend(tf.constant([2], tf.int64), tf.constant(8, tf.int32))
    result["padded_items"] = padded["item_ids"].numpy()
    result["padded_scores"] = padded["scores"].numpy()
    result["padded_sources"] = padded["source_ids"].numpy().astype(str)
    errors = {}
    for name, call in (
        ("user", lambda: model.recommend(tf.constant([7], tf.int64), tf.constant(2))),
        ("negative_user", lambda: model.score(tf.constant([-1], tf.int64),
                                              tf.constant(data["images"][:1]))),
        ("k", lambda: model.recommend(tf.constant([0], tf.int64), tf.constant(99)))):
      try:
        call()
        errors[name] = None
      except tf.errors.InvalidArgumentError as e:
        errors[name] = e.message
    np.savez(out + "/outputs.npz", **result)
    json.dump({"errors": errors, "dvbpr_tf_imported": "dvbpr_tf" in sys.modules},
              open(out + "/errors.json", "w"))
""")


def test_export_reloads_in_plain_tensorflow(tmp_path):
  tf.keras.utils.set_random_seed(0)
  model = dvbpr.Dvbpr(5, cnn_f.TowerConfig(embedding_dim=6, input_size=32,
                                           width_multiplier=0.125)).build_for_input()
  model.theta.assign(tf.random.normal([5, 6]))
  rng = np.random.default_rng(0)
  catalog_images = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
  item_vectors = model.item_embeddings(input_pipeline.scale_images(catalog_images)).numpy()
  train_users = np.array([0, 0, 1, 2, 2, 2])
  train_items = np.array([3, 5, 0, 1, 2, 8])
  sources = [f"sku-{i:03d}" for i in range(9)]
  path = export_lib.export_dvbpr(model, item_vectors, train_users, train_items, sources,
                                 tmp_path / "export" / "dvbpr")
  images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
  users = np.array([4, 0, 2, 1], np.int64)
  np.savez(tmp_path / "inputs.npz", images=images, users=users)
  subprocess.run([sys.executable, "-c", RELOAD, str(path), str(tmp_path)], check=True,
                 capture_output=True, timeout=300)
  out = np.load(tmp_path / "outputs.npz")
  info = json.loads((tmp_path / "errors.json").read_text())
  assert not info["dvbpr_tf_imported"]

  phi = model.item_embeddings(input_pipeline.scale_images(images)).numpy()
  np.testing.assert_allclose(out["embedding"], phi, rtol=1e-4, atol=1e-5)
  expected_scores = np.sum(model.theta.numpy()[users] * phi, axis=1)
  np.testing.assert_allclose(out["score"], expected_scores, rtol=1e-4, atol=1e-5)

  all_scores = model.theta.numpy()[:3] @ item_vectors.T
  for row, user in enumerate([0, 1, 2]):
    seen = set(train_items[train_users == user])
    ranked = [i for i in np.argsort(-all_scores[row], kind="stable") if i not in seen][:4]
    assert list(out["rec_items"][row]) == ranked
    np.testing.assert_allclose(out["rec_scores"][row], all_scores[row][ranked], rtol=1e-5)
    assert list(out["rec_sources"][row]) == [sources[i] for i in ranked]
    assert not seen & set(out["rec_items"][row])

  # k above the user's unseen items (user 2 saw 3 of 9): the 6 unseen, then padding.
  seen = set(train_items[train_users == 2])
  unseen = [i for i in np.argsort(-all_scores[2], kind="stable") if i not in seen]
  assert list(out["padded_items"][0]) == unseen + [-1, -1]
  np.testing.assert_allclose(out["padded_scores"][0][:6], all_scores[2][unseen], rtol=1e-5)
  assert np.all(np.isneginf(out["padded_scores"][0][6:]))
  assert list(out["padded_sources"][0]) == [sources[i] for i in unseen] + ["", ""]
  assert "user id out of range" in info["errors"]["user"]
  assert "user id out of range" in info["errors"]["negative_user"]
  assert "k must be at most 9" in info["errors"]["k"]
