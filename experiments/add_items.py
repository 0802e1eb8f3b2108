"""`--experiment=add_items`: new products recommendable at once, without retraining.

The new items' images (`--items`: a folder of `<id>.jpg/.png` files or a CSV `id,path,category`,
`dvbpr_tf/serving/new_items.py`) are embedded with a trained DVBPR's tower, and a NEW export
is written whose catalog is the old catalog followed by the new items, so that every signature
(`recommend`, `recommend_for_items`, `similar_items`, ...) returns them at once. Users and the
tower are unchanged: DVBPR scores an item from its image alone (x_ui = theta_u . Phi(X_i),
eq. 6), which is what makes a new item recommendable without training.

- The trained model: the work dir `--dvbpr_workdir` names (its best checkpoint for the tower,
  its export for the catalog); without that flag a DVBPR is trained first with the run's preset
  in `<workdir>/dvbpr` and reused next time (`trained_models.dvbpr`, which also refuses a model
  trained on other data).
- Ids: the old items keep their ids 0..N-1 and source ids, the new items get N..N+n-1 in the
  order listed (a folder's files by name, a CSV's rows in order), so ids a client stored stay
  valid. `new_items.csv` in the work dir maps each new id to its source id and category.
- The old items' vectors are read from the trained export (`serving_catalog/item_vectors`), so
  they are exactly what it serves; its user vectors are checked equal to the checkpoint's, and
  a few catalog items are embedded again and compared, so both come from the same model. The
  new items are embedded by the function the training run embedded the catalog with for its
  export (`evaluator.embed_items` over an `ImageTable` built from the trained run's pipeline
  config), after the conversion the dataset builders apply (RGB JPEG, resized to the
  catalog's stored size when its images share one): an image that is a copy of a catalog
  item's stored image gets that item's vector.
- Training interactions are the dataset's training split, as in the trained export (what
  `recommend` excludes); the new items have none. The fold-in's negatives are drawn over the
  new catalog (`fold_in.draw_negatives`), so `recommend_for_items` may rank slightly
  differently than the trained export for the same liked items.

Writes into the work dir (never into `--dvbpr_workdir`, whose export is left as it is):

    export/dvbpr/      the SavedModel (written through a temporary folder renamed into
                       place, as every export; a rerun replaces it whole)
    new_items.csv      `item,source_id,category`: the new items' ids in the export
    results.json       items added, the new catalog's size, the export, seconds, images/s
    config.json        the request (the items, the trained model)

Every check of the items is made before anything is written (`new_items.read_new_items`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import pathlib
import time

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.evaluation import evaluator
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.serving import new_items as new_items_lib
from dvbpr_tf_datasets.common import images as image_files
from experiments import batch_recommend
from experiments import common
from experiments import trained_models

LISTING_NAME = "new_items.csv"
LISTING_COLUMNS = ("item", "source_id", "category")
LOG_EVERY_SECONDS = 10.0
CHECKED_ITEMS = 8  # Catalog items embedded again to check the export is the checkpoint's.


@dataclasses.dataclass(frozen=True)
class AddItemsRequest:
  """What the user asked for (resolved from flags).

  Attributes:
    items: a folder of images or a CSV (see `dvbpr_tf/serving/new_items.py`).
    dvbpr_workdir: a trained DVBPR's work dir (None: train one in `<workdir>/dvbpr`).
  """

  items: str
  dvbpr_workdir: str | None = None


def run(spec: common.RunSpec, dvbpr_config: config_lib.DvbprConfig,
        request: AddItemsRequest) -> dict:
  """Embeds the new items, writes the export of the grown catalog; returns results.json's
  content."""
  started = time.time()
  catalog = common.load_catalog(spec)
  work = spec.work
  if request.dvbpr_workdir:
    dvbpr_root = pathlib.Path(request.dvbpr_workdir).expanduser().absolute()
    batch_recommend.export_path(dvbpr_root)  # Refused before anything is loaded or written.
  else:
    dvbpr_root = work.root.absolute() / "dvbpr"
  _check_workdir(work, dvbpr_root)
  size = new_items_lib.stored_image_size(catalog.jpegs)
  items = new_items_lib.read_new_items(
      request.items, category_names=catalog.category_names, existing_ids=catalog.source_ids,
      read=image_files.read_regular_file,
      convert=functools.partial(image_files.to_rgb_jpeg, size=size, reduced_decode=True))
  logging.info("add_items: %d new items read from %s (%s; stored at %s)", len(items),
               request.items, items.layout, f"{size}x{size}" if size else "their own size")

  trained = trained_models.dvbpr(spec, catalog, dvbpr_config, request.dvbpr_workdir)
  trained_export = batch_recommend.export_path(dvbpr_root)
  old_vectors = trained_item_vectors(trained_export, trained)

  work.make().lock()  # Checked again under the lock, before anything is written.
  _check_workdir(work, dvbpr_root)
  run_config = {"run": spec.__dict__, "add_items": {
      "items": str(pathlib.Path(request.items).expanduser().absolute()),
      "dvbpr_workdir": str(dvbpr_root), "trained_export": str(trained_export)}}
  _, work = common.start_run(spec, run_config, catalog, resumable=False)

  embed_started = time.time()
  new_vectors = embed_images(trained, items.jpegs)
  embed_seconds = time.time() - embed_started
  train_users, train_items = catalog.interactions("train")
  first = catalog.num_items
  export = export_lib.export_dvbpr(
      trained.model, np.concatenate([old_vectors, new_vectors]), train_users, train_items,
      [str(s) for s in catalog.source_ids] + list(items.source_ids), work.export("dvbpr"))
  listing = write_listing(work.root / LISTING_NAME, first, items, catalog.category_names)

  results = common.results_header(spec, catalog)
  results.update({
      "items": run_config["add_items"]["items"],
      "layout": items.layout,
      "items_added": len(items),
      "previous_catalog_items": int(catalog.num_items),
      "catalog_items": int(catalog.num_items + len(items)),
      "new_item_ids": [first, first + len(items) - 1],
      "skipped_files": len(items.skipped),
      "stored_image_size": size,
      "export": str(export),
      "trained_export": str(trained_export),
      "dvbpr_workdir": str(dvbpr_root),
      "old_item_vectors": "read from the trained export",
      "new_items_csv": str(listing),
      "embed_seconds": embed_seconds,
      "images_per_second": len(items) / max(embed_seconds, 1e-9),
      "seconds": time.time() - started,
  })
  work.write_results(results)
  common.print_block(f"{len(items)} new items added to {catalog.name}", [
      f"  ids {first}..{first + len(items) - 1} (the old items keep 0..{first - 1}); "
      f"{results['catalog_items']} items in the new catalog",
      f"  {results['images_per_second']:.0f} images/s embedded; model: {trained_export}"])
  print(f"Export:  {export}\nNew ids: {listing}\nResults: {work.results_path}", flush=True)
  return results


def _check_workdir(work: workdir_lib.Workdir, dvbpr_root: pathlib.Path) -> None:
  """Refuses the trained model's own work dir (its export is never changed in place) and a
  work dir that holds another experiment's run (`common.refuse_other_experiment`)."""
  if work.root.resolve() == dvbpr_root.resolve():
    raise errors.UserError(
        f"--workdir {work.root} is the trained model's own work dir (--dvbpr_workdir), whose "
        "export add_items never changes: choose another --workdir for the new export")
  common.refuse_other_experiment(work, "add_items", "the new export")


def trained_item_vectors(path: pathlib.Path, trained: trained_models.TrainedDvbpr
                         ) -> np.ndarray:
  """The catalog's item vectors [num_items, K] as the trained export at `path` holds them
  (the variables its `recommend` signature reads).

  Raises:
    errors.UserError: the export is not of this catalog (other items, other source ids), or
      not of the checkpoint's model (its user vectors or its first items' vectors differ from
      the checkpoint's).
  """
  values = export_variables(path, ("item_vectors", "theta"), optional=("table",))
  vectors, theta = values["item_vectors"], values["theta"]
  catalog = trained.catalog
  dim = trained.config.tower.embedding_dim
  retrain = (f"retrain it (--experiment=recommendation --workdir={path.parents[1]}) or name "
             "another --dvbpr_workdir")
  source_ids = ([s.decode("utf-8") for s in values["table"]] if "table" in values
                else list(map(str, catalog.source_ids)))  # An older export has no table.
  if vectors.shape != (catalog.num_items, dim) or source_ids != list(map(str,
                                                                          catalog.source_ids)):
    raise errors.UserError(
        f"the export {path} holds {vectors.shape[0]} items of dimension {vectors.shape[1]}, "
        f"not the {catalog.num_items} items of {catalog.name} (with their source ids) with the "
        f"model's K={dim}: it was exported from other data; {retrain}")
  same = theta.shape == tuple(trained.model.theta.shape) and np.array_equal(
      theta, trained.model.theta.numpy())
  checked = np.arange(min(CHECKED_ITEMS, catalog.num_items))
  again = embed_images(trained, [catalog.jpegs[i] for i in checked], log=False)
  scale = float(np.abs(vectors[checked]).max(initial=0.0)) or 1.0
  if not same or not np.allclose(again, vectors[checked], rtol=1e-4, atol=1e-5 * scale):
    raise errors.UserError(
        f"the export {path} is not of the model in the work dir's best checkpoint (its "
        f"{'user' if not same else 'item'} vectors differ); {retrain}")
  return vectors.astype(np.float32)


def export_variables(path: pathlib.Path, names, optional=()) -> dict[str, np.ndarray]:
  """The values of the variables the export's `recommend` signature reads, by their name
  without scope (`serving_catalog/item_vectors:0` is `item_vectors`): what the export serves,
  however the export tracks its objects. An `optional` name is left out when the export
  has no such variable (an export of an earlier version).

  Raises:
    errors.UserError: the export has no `recommend`, or not exactly one variable of one of
      `names` (or more than one of an `optional` name).
  """
  loaded = tf.saved_model.load(str(path))
  functions = getattr(getattr(loaded, "recommend", None), "concrete_functions", None)
  if not functions:
    raise errors.UserError(f"{path} is not a DVBPR export (it has no recommend signature); "
                           "retrain the model")
  found = {}
  for variable in functions[0].variables:
    found.setdefault(variable.name.rpartition("/")[2].partition(":")[0], []).append(variable)
  missing = [name for name in names if len(found.get(name, ())) != 1]
  missing += [name for name in optional if len(found.get(name, ())) > 1]
  if missing:
    raise errors.UserError(f"{path} is not a DVBPR export of this project (its recommend "
                           f"signature reads no single {', '.join(missing)}); retrain the model")
  return {name: found[name][0].numpy() for name in (*names, *optional) if name in found}


def embed_images(trained: trained_models.TrainedDvbpr, jpegs, log: bool = True) -> np.ndarray:
  """Phi of stored images [n, K], by the function that embedded the trained export's catalog
  (`TrainedDvbpr.item_vectors`: an `ImageTable` with the trained run's pipeline config,
  `evaluator.embed_items`), with a progress line every `LOG_EVERY_SECONDS`."""
  config = trained.config
  table = input_pipeline.ImageTable.from_config(list(jpegs), config.pipeline)
  embed = tf.function(lambda images: trained.model.item_embeddings(images, False),
                      reduce_retracing=True)
  total, done, started, logged = table.num_items, 0, time.time(), time.time()

  def embed_with_progress(images):
    nonlocal done, logged
    vectors = embed(images)
    done += int(images.shape[0])
    now = time.time()
    if log and (now - logged >= LOG_EVERY_SECONDS or done == total):
      logged = now
      logging.info("add_items: %d/%d images embedded (%.0f%%) | %.0f images/s", done, total,
                   100.0 * done / total, done / max(now - started, 1e-9))
    return vectors

  return evaluator.embed_items(embed_with_progress, table, config.train.eval_batch_size)


def write_listing(path: pathlib.Path, first: int, items: new_items_lib.NewItems,
                  category_names) -> pathlib.Path:
  """`new_items.csv` (atomically): each new item's id in the export, source id and category
  name (empty when none was given)."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(LISTING_COLUMNS)
  for n, (source_id, category) in enumerate(zip(items.source_ids, items.categories)):
    name = category_names[category] if category != new_items_lib.NO_CATEGORY else ""
    writer.writerow((first + n, source_id, name))
  files.write_bytes_atomic(path, out.getvalue().encode("utf-8"))
  return path
