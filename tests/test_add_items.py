"""`--experiment=add_items`: new items embedded by a trained DVBPR into a new export, checked
in a process that imports only TensorFlow (a copy of a catalog image scores as its original,
the old items keep their ids and scores), every refusal, and the command line once.

The data is made here: a fashion_catalog of 16 items (`p00`..`p15`, two categories) bought by
12 users, on which a smoke DVBPR is trained once for the module."""

import csv
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.data import catalog as catalog_lib
from experiments import add_items
from experiments import batch_recommend
from experiments import common
from tests import feedback_files
from tests.conftest import REPO

TREE = config_lib.override(config_lib.preset("smoke"), {"dataset": "fashion_catalog"})
ITEMS = [f"p{n:02d}" for n in range(16)]
CATEGORIES = ("Shoes", "Tops")


def _spec(workdir, data_dir) -> common.RunSpec:
  return common.RunSpec(experiment="add_items", dataset="fashion_catalog", preset="smoke",
                        workdir=str(workdir), data_dir=str(data_dir), manual_dir=None, seed=0,
                        tree=config_lib.as_dict(TREE))


def _run(workdir, data_dir, items, dvbpr_workdir=None) -> dict:
  return add_items.run(_spec(workdir, data_dir), TREE.dvbpr,
                       add_items.AddItemsRequest(items=str(items),
                                                 dvbpr_workdir=dvbpr_workdir))


def _image(pixels: np.ndarray, mode: str, kind: str) -> bytes:
  out = io.BytesIO()
  Image.fromarray(pixels).convert(mode).save(out, format=kind)
  return out.getvalue()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
  """(data dir, catalog) of the module's fashion_catalog, built from files made here."""
  manual = tmp_path_factory.mktemp("shop")
  (manual / "images").mkdir()
  for n, item in enumerate(ITEMS):
    (manual / "images" / f"{item}.jpg").write_bytes(feedback_files.image_bytes(n, size=24))
  feedback_files.write_csv(manual / "interactions.csv", ("user_id", "item_id"),
                           [(f"u{u}", ITEMS[(3 * u + j) % 16]) for u in range(12)
                            for j in range(7)])
  feedback_files.write_csv(manual / "categories.csv", ("item_id", "category"),
                           [(item, CATEGORIES[n % 2]) for n, item in enumerate(ITEMS)])
  data_dir = tmp_path_factory.mktemp("tfds")
  catalog = catalog_lib.load_catalog("fashion_catalog", data_dir=str(data_dir),
                                     manual_dir=str(manual))
  return data_dir, catalog


@pytest.fixture(scope="module")
def added(shop, tmp_path_factory):
  """One run without --dvbpr_workdir (DVBPR trained in <workdir>/dvbpr first): a copy of the
  stored image of the item most bought in training, a white JPEG, and images of other modes
  and sizes (grey, transparent RGBA, palette). (work dir, results, original item id)."""
  data_dir, catalog = shop
  root = tmp_path_factory.mktemp("add")
  folder = root / "new"
  folder.mkdir()
  _, train_items = catalog.interactions("train")
  original = int(np.bincount(train_items).argmax())
  (folder / "a_copy.jpg").write_bytes(catalog.jpegs[original])  # The same JPEG bytes.
  white = np.full((64, 64, 3), 255, np.uint8)
  (folder / "b_white.jpg").write_bytes(_image(white, "RGB", "JPEG"))
  (folder / "c_grey.JPG").write_bytes(feedback_files.image_bytes(3, "gray", size=100))
  (folder / "d_clear.png").write_bytes(feedback_files.image_bytes(4, "png_rgba", size=20))
  ramp = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
  (folder / "e_palette.png").write_bytes(_image(ramp, "P", "PNG"))
  (folder / "notes.txt").write_text("not an image: skipped")
  return root / "work", _run(root / "work", data_dir, folder), original


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    old_path, new_path, out, image_file = sys.argv[1:5]
    copy, original = int(sys.argv[5]), int(sys.argv[6])
    old, new = tf.saved_model.load(old_path), tf.saved_model.load(new_path)

    def served(model):  # The variables `recommend` reads, by name without scope.
      return {v.name.rpartition("/")[2].partition(":")[0]: v.numpy()
              for v in model.recommend.concrete_functions[0].variables}

    phi, theta = served(new)["item_vectors"], served(new)["theta"]
    users = tf.range(len(theta), dtype=tf.int64)
    result = {"phi": phi, "theta": theta}
    for name, model, k in (("old", old, len(served(old)["item_vectors"])),
                           ("new", new, len(phi))):
      top = model.recommend(users, tf.constant(k, tf.int32))
      result.update({f"{name}_items": top["item_ids"].numpy(),
                     f"{name}_scores": top["scores"].numpy(),
                     f"{name}_sources": top["source_ids"].numpy().astype(str)})
    image = tf.io.decode_jpeg(tf.io.read_file(image_file), channels=3)
    result["score"] = new.score(users, tf.repeat(image[tf.newaxis], len(theta), 0)).numpy()
    similar = new.similar_items(tf.constant([copy, original], tf.int64), tf.constant(1),
                                tf.constant("cosine"))
    result["similar_items"] = similar["item_ids"].numpy()
    result["similar_scores"] = similar["scores"].numpy()
    liked = tf.range(len(served(old)["item_vectors"]), len(phi), dtype=tf.int64)
    folded = new.recommend_for_items(liked, tf.constant(3))
    result["folded_items"] = folded["item_ids"].numpy()
    np.savez(out + "/outputs.npz", **result)
    json.dump({"dvbpr_tf_imported": "dvbpr_tf" in sys.modules}, open(out + "/info.json", "w"))
""")


@pytest.fixture(scope="module")
def served(added, shop, tmp_path_factory):
  """What the trained and the new export answer, from a process with TensorFlow only."""
  work, _, original = added
  out = tmp_path_factory.mktemp("served")
  image = out / "original.jpg"
  image.write_bytes(shop[1].jpegs[original])
  copy = shop[1].num_items  # a_copy.jpg is the first file: the first new id.
  subprocess.run([sys.executable, "-c", RELOAD, str(work / "dvbpr" / "export" / "dvbpr"),
                  str(work / "export" / "dvbpr"), str(out), str(image), str(copy),
                  str(original)], check=True, capture_output=True, timeout=300,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert not json.loads((out / "info.json").read_text())["dvbpr_tf_imported"]
  return dict(np.load(out / "outputs.npz"))


def _score_of(items, scores, item) -> float | None:
  hit = np.flatnonzero(items == item)
  return float(scores[hit[0]]) if len(hit) else None


def test_a_copy_of_an_item_gets_its_score_for_every_user(added, served, shop):
  _, _, original = added
  catalog = shop[1]
  copy = catalog.num_items
  phi, theta = served["phi"], served["theta"]
  np.testing.assert_allclose(phi[copy], phi[original], rtol=1e-6, atol=1e-7)
  train_users, train_items = catalog.interactions("train")
  owners = set(train_users[train_items == original].tolist())
  assert owners and len(owners) < catalog.num_users  # Both kinds of user are checked.
  for user in range(catalog.num_users):
    items, scores = served["new_items"][user], served["new_scores"][user]
    copy_score = _score_of(items, scores, copy)  # Never excluded: nobody bought it.
    assert copy_score is not None
    expected = float(np.dot(theta[user].astype(np.float64), phi[original]))
    assert copy_score == pytest.approx(expected, rel=1e-5, abs=1e-7)
    original_score = _score_of(items, scores, original)
    if user in owners:
      assert original_score is None  # Excluded, a training item; its copy is not.
    else:
      assert copy_score == pytest.approx(original_score, rel=1e-6, abs=1e-8)
  # `score` embeds the original's image inside the export: the same x_ui.
  copy_scores = [_score_of(served["new_items"][u], served["new_scores"][u], copy)
                 for u in range(catalog.num_users)]
  np.testing.assert_allclose(served["score"], copy_scores, rtol=1e-4, atol=1e-6)


def test_old_items_keep_their_ids_and_scores_and_new_ids_are_served(added, served, shop):
  work, results, original = added
  catalog = shop[1]
  old = catalog.num_items
  copy = old
  for user in range(catalog.num_users):
    keep = served["old_items"][user] >= 0
    new_items = served["new_items"][user]
    mask = (new_items >= 0) & (new_items < old)
    np.testing.assert_array_equal(new_items[mask], served["old_items"][user][keep])
    np.testing.assert_allclose(served["new_scores"][user][mask],
                               served["old_scores"][user][keep], rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(served["new_sources"][user][mask],
                                  served["old_sources"][user][keep])
    added_ids = new_items[new_items >= old]
    assert sorted(added_ids.tolist()) == list(range(old, old + 5))  # Nobody has bought them.
  listing = list(csv.reader(io.StringIO((work / "new_items.csv").read_text())))
  assert listing == [["item", "source_id", "category"]] + [
      [str(old + n), name, ""] for n, name in enumerate(
          ("a_copy", "b_white", "c_grey", "d_clear", "e_palette"))]
  sources = dict(zip(served["new_items"].ravel().tolist(),
                     served["new_sources"].ravel().tolist()))
  assert sources[old + 4] == "e_palette" and sources[3] == catalog.source_ids[3]
  # Cosine of a copy to its original is 1; each is the other's nearest item.
  assert served["similar_items"].tolist() == [[original], [copy]]
  np.testing.assert_allclose(served["similar_scores"], 1.0, atol=1e-5)
  # A new user who likes the five new items: the top 3 of the rest (the liked left out).
  assert len(served["folded_items"]) == 3 and all(0 <= i < old for i in served["folded_items"])
  # A transparent PNG is composited onto white, as the builders do: the white JPEG's vector.
  np.testing.assert_allclose(served["phi"][old + 3], served["phi"][old + 1], rtol=1e-5,
                             atol=1e-6)
  assert results["items_added"] == 5 and results["catalog_items"] == old + 5
  assert results["new_item_ids"] == [old, old + 4] and results["skipped_files"] == 1
  assert results["export"] == str(work / "export" / "dvbpr")
  assert results["stored_image_size"] == 64 and results["seconds"] > 0
  saved = json.loads((work / "results.json").read_text())
  assert saved["items_added"] == 5 and saved["experiment"] == "add_items"
  config = json.loads((work / "config.json").read_text())
  assert config["add_items"]["dvbpr_workdir"] == str(work.absolute() / "dvbpr")


def _folder(root, files) -> pathlib.Path:
  root.mkdir()
  for name, data in files.items():
    (root / name).write_bytes(data)
  return root


def _csv(path, header, rows) -> pathlib.Path:
  return feedback_files.write_csv(path, header, rows)


JPEG = feedback_files.image_bytes(7, size=16)
REFUSALS = {  # name -> (items to make under tmp_path, the error's pattern)
    "empty folder": (lambda t: _folder(t / "new", {}), r"holds no image files"),
    "only other files": (lambda t: _folder(t / "new", {"notes.txt": b"x"}),
                         r"holds no image files \(\.jpg, \.jpeg, \.png; 1 other file skipped, "
                         r"e\.g\. notes\.txt\)"),
    "empty csv": (lambda t: _csv(t / "new.csv", ("id", "path", "category"), []),
                  r"holds no item rows"),
    "blank csv": (lambda t: _csv(t / "new.csv", (), []), r"is empty: it needs the header"),
    "csv without path": (lambda t: _csv(t / "new.csv", ("id", "category"), [("x", "")]),
                         r"has no column 'path' \(columns found: id, category\)"),
    "not an image": (lambda t: _folder(t / "new", {"good.jpg": JPEG, "bad.jpg": b"<html>"}),
                     r"1 of the new items' files is not a usable image: bad\.jpg: not an image"),
    "truncated": (lambda t: _csv(t / "new.csv", ("id", "path"), [("x", _write(
        t / "x.jpg", feedback_files.image_bytes(1, "truncated", size=64)))]),
                  r"new\.csv line 2 \(.*x\.jpg\): cannot decode image"),
    "missing file": (lambda t: _csv(t / "new.csv", ("id", "path"), [("x", "nowhere.jpg")]),
                     r"new\.csv line 2 \(nowhere\.jpg\): cannot read .*nowhere\.jpg"),
    "existing id": (lambda t: _folder(t / "new", {"p03.jpg": JPEG, "fresh.jpg": JPEG}),
                    r"ids the catalog already has: 'p03' \(p03\.jpg\)"),
    "repeated in folder": (lambda t: _folder(t / "new", {"a.jpg": JPEG, "a.png": JPEG}),
                           r"an id more than once: 'a' \(a\.jpg and a\.png\)"),
    "repeated in csv": (lambda t: _csv(t / "new.csv", ("id", "path"), [
        ("x", _write(t / "1.jpg", JPEG)), ("x", _write(t / "2.jpg", JPEG))]),
                        r"an id more than once: 'x' \(new\.csv line 2 .* and new\.csv line 3"),
    "unknown category": (lambda t: _csv(t / "new.csv", ("id", "path", "category"), [
        ("x", _write(t / "1.jpg", JPEG), "Hats")]),
                         r"line 2: unknown category 'Hats'; the dataset's categories are "
                         r"'Shoes', 'Tops'"),
    "no such path": (lambda t: t / "nothing", r"does not exist"),
    "fifo": (lambda t: _fifo(_folder(t / "new", {"a.jpg": JPEG}), "b.jpg"),
             r"new items' files is not a usable image: b\.jpg: cannot read .*not a regular "
             r"file"),
    "link out of the folder": (lambda t: _link(_folder(t / "new", {"a.jpg": JPEG}), "b.jpg",
                                               _write(t / "secret.jpg", JPEG)),
                               r"b\.jpg resolves outside the folder"),
}


def _fifo(folder, name):
  os.mkfifo(folder / name)  # A plain read would block forever.
  return folder


def _link(folder, name, target):
  (folder / name).symlink_to(folder.parent / target)
  return folder


def _write(path, data) -> str:
  path.write_bytes(data)
  return path.name


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_names_what_is_wrong_and_writes_nothing(case, added, shop, tmp_path):
  make, pattern = REFUSALS[case]
  items = make(tmp_path)
  trained = added[0] / "dvbpr"
  with pytest.raises(errors.UserError, match=pattern):
    _run(tmp_path / "work", shop[0], items, dvbpr_workdir=str(trained))
  assert not (tmp_path / "work").exists()


def test_the_trained_models_export_is_never_changed(added, shop, tmp_path):
  trained = added[0] / "dvbpr"
  export = trained / "export" / "dvbpr"
  before = batch_recommend.export_fingerprint(export)
  items = _folder(tmp_path / "new", {"fresh.jpg": JPEG})
  with pytest.raises(errors.UserError, match="the trained model's own work dir"):
    _run(trained, shop[0], items, dvbpr_workdir=str(trained))
  with pytest.raises(errors.UserError, match=r"holds a recommendation run; choose another "
                     r"--workdir for the new export \(--dvbpr_workdir=.* uses the DVBPR"):
    _run(trained, shop[0], items)
  assert batch_recommend.export_fingerprint(export) == before


def _main(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "experiments.main", "--experiment=add_items",
                         "--preset=smoke", "--dataset=fashion_catalog", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300)


def test_command_line_with_a_csv(added, shop, tmp_path):
  """A CSV with categories, a relative and an absolute path: exit 0, the ids in row order."""
  (tmp_path / "photos").mkdir()
  (tmp_path / "photos" / "one.png").write_bytes(feedback_files.image_bytes(9, "png"))
  absolute = tmp_path / "two.jpg"
  absolute.write_bytes(feedback_files.image_bytes(8, "cmyk", size=40))
  items = _csv(tmp_path / "lists" / "new.csv", ("id", "path", "category"),
               [("z-new", "../photos/one.png", " Tops "), ("a-new", str(absolute), "")])
  done = _main(f"--items={items}", f"--dvbpr_workdir={added[0] / 'dvbpr'}",
               f"--data_dir={shop[0]}", f"--workdir={tmp_path / 'work'}")
  assert done.returncode == 0, done.stderr[-3000:]
  old = shop[1].num_items
  assert f"ids {old}..{old + 1}" in done.stdout
  results = json.loads((tmp_path / "work" / "results.json").read_text())
  assert results["items_added"] == 2 and results["catalog_items"] == old + 2
  assert results["layout"] == "csv"
  assert (tmp_path / "work" / "export" / "dvbpr" / "saved_model.pb").is_file()
  listing = (tmp_path / "work" / "new_items.csv").read_text().splitlines()
  assert listing == ["item,source_id,category", f"{old},z-new,Tops", f"{old + 1},a-new,"]


def test_command_line_refusal_is_one_error_line(added, shop, tmp_path):
  items = _csv(tmp_path / "new.csv", ("id", "path", "category"),
               [("x", _write(tmp_path / "1.jpg", JPEG), "Hats")])
  done = _main(f"--items={items}", f"--dvbpr_workdir={added[0] / 'dvbpr'}",
               f"--data_dir={shop[0]}", f"--workdir={tmp_path / 'work'}")
  assert done.returncode == 2
  lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1 and "unknown category 'Hats'" in lines[0]
  assert "Traceback" not in done.stderr and not (tmp_path / "work").exists()
  missing = _main(f"--data_dir={shop[0]}", f"--workdir={tmp_path / 'work'}")
  assert missing.returncode == 2 and "needs --items" in missing.stderr
