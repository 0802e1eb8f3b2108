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
from dvbpr_tf.serving import fold_in

# What both reload scripts start with: the export loaded in a process that imports only
# TensorFlow, a helper that keeps each refused call's message, and the writing of the results.
PLAIN_TENSORFLOW = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, out = sys.argv[1], sys.argv[2]
    data = np.load(out + "/inputs.npz")
    model = tf.saved_model.load(path)

    def refusals(calls):
      errors = {}
      for name, call in calls:
        try:
          call()
          errors[name] = None
        except tf.errors.InvalidArgumentError as e:
          errors[name] = e.message
      return errors

    def finish(result, errors):
      np.savez(out + "/outputs.npz", **result)
      json.dump({"errors": errors, "dvbpr_tf_imported": "dvbpr_tf" in sys.modules},
                open(out + "/errors.json", "w"))
""")

RELOAD = PLAIN_TENSORFLOW + textwrap.dedent("""
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
    errors = refusals((
        ("user", lambda: model.recommend(tf.constant([7], tf.int64), tf.constant(2))),
        ("negative_user", lambda: model.score(tf.constant([-1], tf.int64),
                                              tf.constant(data["images"][:1]))),
        ("k", lambda: model.recommend(tf.constant([0], tf.int64), tf.constant(99)))))
    finish(result, errors)
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


NEW_USERS = PLAIN_TENSORFLOW + textwrap.dedent("""
    result = {}
    liked = model.recommend_for_items(tf.constant([3, 5, 3], tf.int64), tf.constant(4))
    again = model.recommend_for_items(tf.constant([5, 3], tf.int32), tf.constant(4))
    same = model.recommend_for_items(tf.constant([3, 5, 3], tf.int64), tf.constant(4))
    photos = model.recommend_for_images(tf.constant(data["photos"]), tf.constant(9))
    for name, top in (("items", liked), ("again", again), ("same", same), ("photos", photos)):
      for key, value in top.items():
        result[f"{name}_{key}"] = value.numpy().astype(str) if key == "source_ids" else value
    for metric in ("cosine", "inner_product"):
      near = model.similar_items(tf.constant([0, 4], tf.int64), tf.constant(3), metric)
      result[f"similar_{metric}_items"] = near["item_ids"].numpy()
      result[f"similar_{metric}_scores"] = near["scores"].numpy()
    result["stored_phi"] = model.item_vectors(tf.constant([4, 0], tf.int32)).numpy()
    near = model.similar_images(tf.constant(data["photos"][:1]), tf.constant(2), "cosine")
    result["similar_image_items"] = near["item_ids"].numpy()
    result["similar_image_scores"] = near["scores"].numpy()
    photo = tf.constant(data["photos"][:1])
    errors = refusals((
        ("empty", lambda: model.recommend_for_items(tf.zeros([0], tf.int64), tf.constant(2))),
        ("unknown", lambda: model.similar_items(tf.constant([9], tf.int64), tf.constant(2),
                                                "cosine")),
        ("negative", lambda: model.recommend_for_items(tf.constant([-2], tf.int64),
                                                       tf.constant(2))),
        ("float", lambda: model.recommend_for_images(tf.cast(photo, tf.float32) / 255.0,
                                                     tf.constant(2))),
        ("numpy_float64", lambda: model.item_embedding(data["photos"][:1] / 1.0)),
        ("rank", lambda: model.similar_images(photo[0], tf.constant(2), "cosine")),
        ("channels", lambda: model.item_embedding(tf.concat([photo, photo[..., :1]], -1))),
        ("no_images", lambda: model.item_embedding(tf.zeros([0, 8, 8, 3], tf.uint8))),
        ("metric", lambda: model.similar_items(tf.constant([1], tf.int64), tf.constant(2),
                                               "dot")),
        ("k", lambda: model.recommend_for_images(photo, tf.constant(0))),
        ("k_large", lambda: model.similar_items(tf.constant([1], tf.int64), tf.constant(10),
                                                "cosine"))))
    finish(result, errors)
""")


def test_new_users_and_similar_items_in_plain_tensorflow(tmp_path):
  """recommend_for_items / _images (fold-in) and similar_items / _images against NumPy and
  `fold_in.fold_in`; every input check's message."""
  tf.keras.utils.set_random_seed(1)
  model = dvbpr.Dvbpr(5, cnn_f.TowerConfig(embedding_dim=6, input_size=32,
                                           width_multiplier=0.125),
                      theta_decay=0.5, visual_bias=True).build_for_input()
  model.visual_bias.assign(tf.random.normal([6], stddev=0.1))
  rng = np.random.default_rng(1)
  catalog_images = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
  phi = model.item_embeddings(input_pipeline.scale_images(catalog_images)).numpy()
  phi *= 100.0  # Scores of a useful size, so that the fold-in has something to fit.
  sources = [f"sku-{i:03d}" for i in range(9)]
  path = export_lib.export_dvbpr(model, phi, np.array([0, 1]), np.array([2, 3]), sources,
                                 tmp_path / "dvbpr")
  photos = rng.integers(0, 256, (2, 40, 24, 3), dtype=np.uint8)
  np.savez(tmp_path / "inputs.npz", photos=photos)
  subprocess.run([sys.executable, "-c", NEW_USERS, str(path), str(tmp_path)], check=True,
                 capture_output=True, timeout=300)
  out = np.load(tmp_path / "outputs.npz")
  info = json.loads((tmp_path / "errors.json").read_text())
  assert not info["dvbpr_tf_imported"]
  prior = model.visual_bias.numpy()

  # A new user who likes items 3 and 5 (3 given twice counts once): eq. 5 against every other
  # item (the catalog is smaller than the negatives drawn), both excluded from the ranking.
  weights = np.ones((2, 9), np.float32)
  weights[:, [3, 5]] = 0.0
  theta = fold_in.fold_in(phi[[3, 5]], phi, 0.5, prior, tf.constant(weights)).numpy()
  np.testing.assert_allclose(out["items_user_vector"], theta + prior, rtol=1e-4, atol=1e-6)
  scores = phi @ (theta + prior)
  ranked = [i for i in np.argsort(-scores, kind="stable") if i not in (3, 5)][:4]
  assert list(out["items_item_ids"]) == ranked
  np.testing.assert_allclose(out["items_scores"], scores[ranked], rtol=1e-4)
  assert list(out["items_source_ids"]) == [sources[i] for i in ranked]
  for key in ("item_ids", "scores", "user_vector"):  # Seeded: the same input, the same answer.
    np.testing.assert_array_equal(out[f"same_{key}"], out[f"items_{key}"])
    np.testing.assert_allclose(out[f"again_{key}"], out[f"items_{key}"], rtol=1e-5)

  # From photos: their Phi takes the liked items' place, nothing excluded (k = every item).
  liked = model.item_embeddings(input_pipeline.scale_images(
      tf.image.resize(tf.cast(photos, tf.float32), [32, 32], antialias=True))).numpy()
  theta = fold_in.fold_in(liked, phi, 0.5, prior).numpy()
  np.testing.assert_allclose(out["photos_user_vector"], theta + prior, rtol=1e-3, atol=1e-5)
  assert sorted(out["photos_item_ids"]) == list(range(9))

  np.testing.assert_array_equal(out["stored_phi"], phi[[4, 0]])
  # Similar items: the item itself excluded, by cosine and by inner product.
  unit = phi / np.linalg.norm(phi, axis=1, keepdims=True)
  for metric, similarity in (("cosine", unit @ unit.T), ("inner_product", phi @ phi.T)):
    for row, item in enumerate([0, 4]):
      ranked = [i for i in np.argsort(-similarity[item], kind="stable") if i != item][:3]
      assert list(out[f"similar_{metric}_items"][row]) == ranked
      np.testing.assert_allclose(out[f"similar_{metric}_scores"][row],
                                 similarity[item][ranked], rtol=1e-4)
  photo = liked[0] / np.linalg.norm(liked[0])
  assert list(out["similar_image_items"][0]) == list(np.argsort(-(unit @ photo))[:2])

  errors = info["errors"]
  assert "item_ids is empty" in errors["empty"]
  assert "item id out of range: valid item ids are 0..8" in errors["unknown"]
  assert "item id out of range" in errors["negative"]
  assert "images must be uint8 [N, H, W, 3] in 0..255, got float32" in errors["float"]
  assert "got float64" in errors["numpy_float64"]
  assert "images must have rank 4" in errors["rank"]
  assert "images must have 3 channels" in errors["channels"]
  assert "images is empty" in errors["no_images"]
  assert "metric must be" in errors["metric"]
  assert "k must be at least 1" in errors["k"]
  assert "k must be at most 9" in errors["k_large"]
