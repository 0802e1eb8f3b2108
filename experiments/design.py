"""`--experiment=design` (paper Fig. 5) and `--experiment=tailoring` (paper Fig. 6).

design:    the user's top-3 real items of a category (retrieval, eq. 8) beside the top-3
           generated ones (preference maximisation, eqs. 9-11), each captioned with its
           preference score theta_u . Phi(image).
tailoring: a query (a catalog item or any image file) inverted into the GAN (eq. 12), then
           moved toward the user's taste; the strip shows the query, its reconstruction and
           the images after the recorded iterations, with their scores.
Both load the trained DVBPR and GAN named by --dvbpr_workdir / --gan_workdir, or train them
first with the run's preset in <workdir>/dvbpr and <workdir>/gan (reused next time).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from PIL import Image
from PIL import ImageDraw

from dvbpr_tf.core import errors
from dvbpr_tf.core import files
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.design import designer as design_lib
from dvbpr_tf.evaluation import image_metrics
from dvbpr_tf.reporting import charts
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from dvbpr_tf_datasets.common import images as image_files
from experiments import common
from experiments import trained_models



@dataclasses.dataclass(frozen=True)
class DesignRequest:
  """What the user asked for (resolved from flags)."""

  user: int | None
  category: str | None
  item: int | None = None
  image: str | None = None
  dvbpr_workdir: str | None = None
  gan_workdir: str | None = None


def resolve_user(catalog, user) -> int:
  if user is None or not 0 <= int(user) < catalog.num_users:
    raise errors.UserError(
        f"--user must be a user id in 0..{catalog.num_users - 1}, got {user}")
  return int(user)


def resolve_category(catalog, category) -> int:
  """A category name or index -> index."""
  names = list(catalog.category_names)
  if category is None:
    raise errors.UserError(f"--category is required; categories: {', '.join(names)}")
  if str(category) in names:
    return names.index(str(category))
  if str(category).isdigit() and int(category) < len(names):
    return int(category)
  raise errors.UserError(
      f"unknown --category {category!r}; categories: {', '.join(names)} (or 0..{len(names) - 1})")


def load_models(spec, catalog, dvbpr_config, gan_config, request: DesignRequest | None = None,
                settings: dict | None = None):
  """(DVBPR task, GAN task, Designer, work dir) for design, tailoring, Table IV and the eta
  sweep. The run starts (`common.start_run`: lock, config.json with `settings`) only after
  the models load: a refused model leaves nothing."""
  request = request or DesignRequest(user=None, category=None)
  d_task, g_task, designer = trained_models.design_models(
      spec, catalog, dvbpr_config, gan_config, request.dvbpr_workdir, request.gan_workdir)
  run_config = {"run": spec.__dict__, "request": dataclasses.asdict(request),
                **(settings or {})}
  _, work = common.start_run(spec, run_config, catalog, resumable=False)
  return d_task, g_task, designer, work


def _with_checks(rows: list[dict], checks) -> list[dict]:
  return rows if checks is None else [{**row, **check} for row, check in zip(rows, checks)]


def synthesis_start(designer: design_lib.Designer, config: design_lib.DesignConfig, catalog,
                    user_vector, item_vectors, category: int):
  """The m starting codes `config.start` asks for: None for 'uniform' (synthesize draws
  them), else the inversions (eq. 12) of the user's m best real items of the category (eq. 8)."""
  if config.start == "uniform":
    return None
  ids, _ = design_lib.retrieve(user_vector, item_vectors, catalog.item_category, category,
                               config.num_starts)
  images = input_pipeline.decode_items(catalog.jpegs, ids, designer.generator.config.image_size)
  z_prime, _ = designer.inverter.invert_each(category, images, config.start_inversion_steps,
                                             config.learning_rate, seed=config.seed)
  return z_prime


def run_design(spec: common.RunSpec, dvbpr_config, gan_config, config: design_lib.DesignConfig,
               request: DesignRequest) -> dict:
  started = time.time()
  catalog = common.load_catalog(spec)
  user = resolve_user(catalog, request.user)
  category = resolve_category(catalog, request.category)
  d_task, g_task, designer, work = load_models(
      spec, catalog, dvbpr_config, gan_config, request,
      {"design": dataclasses.asdict(config)})
  item_vectors, theta = d_task.item_vectors(), d_task.user_vectors()[user]
  ids, scores = design_lib.retrieve(theta, item_vectors, catalog.item_category, category,
                                    config.top_k)
  result = designer.synthesize(user, category, config, start_z_prime=synthesis_start(
      designer, config, catalog, theta, item_vectors, category))
  scorer = image_metrics.category_classifier(catalog)
  real = list(input_pipeline.decode_items(catalog.jpegs, ids, g_task.network.image_size))
  generated = list(input_pipeline.to_uint8(result.chosen_images))
  chosen_pref = result.preference[result.chosen]
  name = catalog.category_names[category]
  figure = _figure(
      [("retrieved (eq. 8)", real, scores), ("generated (eq. 10)", generated, chosen_pref)],
      f"user {user}, {name}")
  path = work.figures / f"design_user{user}_{name}.png"
  files.write_png_atomic(path, figure)
  results = common.results_header(spec, catalog)
  results.update({
      "user": user, "category": name, "config": dataclasses.asdict(config),
      "retrieved": _with_checks(
          [{"item_id": int(i), "source_id": str(catalog.source_ids[i]),
            "preference": float(s)} for i, s in zip(ids, scores)],
          image_metrics.category_checks(scorer, real, category, catalog.category_names)),
      "generated": _with_checks(
          [{"start": int(k), "preference": float(result.preference[k]),
            "objective": float(result.objective[k]),
            "realism_D": float(result.realism[k])} for k in result.chosen],
          image_metrics.category_checks(scorer, generated, category,
                                        catalog.category_names)),
      "generated_preference_all_starts_mean": float(np.mean(result.preference)),
      "figure": str(path), "wall_time_seconds": time.time() - started,
  })
  work.write_results(results)
  common.print_block(f"Design for user {user}, category {name}", [
      "  retrieved:  " + "  ".join(f"{s:.3f}" for s in scores),
      "  generated:  " + "  ".join(f"{s:.3f}" for s in chosen_pref)])
  report = html_report.write_report(work.root, f"Design for user {user}, {name}", results,
                                    sections.design(results))
  print(f"Figure:  {path}\nResults: {work.results_path}\nReport:  {report}", flush=True)
  return results


def run_tailoring(spec: common.RunSpec, dvbpr_config, gan_config,
                  config: design_lib.TailorConfig, request: DesignRequest,
                  record_steps=(0, 10, 20, 30, 40, 50)) -> dict:
  started = time.time()
  catalog = common.load_catalog(spec)
  user = resolve_user(catalog, request.user)
  if (request.item is None) == (request.image is None):
    raise errors.UserError("give exactly one of --item (a catalog item id) or --image (a file)")
  if request.item is not None:
    if not 0 <= request.item < catalog.num_items:
      raise errors.UserError(
          f"--item must be an item id in 0..{catalog.num_items - 1}, got {request.item}")
    query_bytes = catalog.jpegs[request.item]
    category = (resolve_category(catalog, request.category) if request.category is not None
                else int(catalog.item_category[request.item]))
    query_name = f"item {request.item} ({catalog.source_ids[request.item]})"
  else:
    try:
      query_bytes = image_files.read_regular_file(request.image)
    except OSError as e:
      raise errors.UserError(
          f"cannot read --image {request.image}: {e.strerror or e}") from e
    category = resolve_category(catalog, request.category)
    query_name = request.image
  try:
    query = image_files.decode_rgb(query_bytes)  # Upright, 8 bits, within the pixel limit.
  except image_files.BadImageError as e:
    raise errors.UserError(f"the query image {query_name} cannot be used: {e}") from e
  _, g_task, designer, work = load_models(
      spec, catalog, dvbpr_config, gan_config, request,
      {"tailoring": dataclasses.asdict(config), "record_steps": list(record_steps)})
  result = designer.tailor(user, category, query, config, record_steps=record_steps)
  size = g_task.network.image_size
  query_small = input_pipeline.to_uint8(result.inversion.target)
  strip_images = [query_small, input_pipeline.to_uint8(result.inversion.reconstruction)] + list(
      input_pipeline.to_uint8(result.images))
  preference = [float("nan"), float("nan")] + [float(p) for p in result.preference]
  labels = ["query", "reconstruction"] + [f"iteration {s}" for s in result.steps]
  figure = _strip(strip_images, labels, preference, size)
  name = catalog.category_names[category]
  path = work.figures / f"tailoring_user{user}_{name}.png"
  files.write_png_atomic(path, figure)
  results = common.results_header(spec, catalog)
  results.update({
      "user": user, "category": name, "query": query_name,
      "inversion_l1_before": float(result.inversion.l1_before),
      "inversion_l1_after": float(result.inversion.l1_after),
      "iterations": _with_checks(
          [{"step": int(s), "preference": float(p), "objective": float(o),
            "realism_D": float(r)} for s, p, o, r in
           zip(result.steps, result.preference, result.objective, result.realism)],
          image_metrics.category_checks(image_metrics.category_classifier(catalog),
                                        list(input_pipeline.to_uint8(result.images)), category,
                                        catalog.category_names)),
      "figure": str(path), "wall_time_seconds": time.time() - started,
  })
  work.write_results(results)
  common.print_block(f"Tailoring {query_name} for user {user}", [
      f"  inversion L1 {result.inversion.l1_before:.4f} -> {result.inversion.l1_after:.4f}",
      "  preference by iteration: " + "  ".join(
          f"{s}:{p:.3f}" for s, p in zip(result.steps, result.preference))])
  report = html_report.write_report(work.root, f"Tailoring {query_name} for user {user}",
                                    results, sections.tailoring(results))
  print(f"Figure:  {path}\nResults: {work.results_path}\nReport:  {report}", flush=True)
  return results


def _figure(rows, title: str) -> np.ndarray:
  """Rows of (label, images, scores): images captioned with their preference scores."""
  size = (rows[0][1][0].shape[0] * charts.scale_for(rows[0][1][0].shape[0])
          if rows[0][1] else charts.MIN_IMAGE_SIDE)
  columns = max(len(images) for _, images, _ in rows)
  label_width, caption = 140, 14
  canvas = Image.new("RGB", (label_width + columns * (size + 8),
                             20 + len(rows) * (size + caption + 8)), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  draw.text((4, 4), title, fill=(0, 0, 0))
  for r, (label, images, scores) in enumerate(rows):
    top = 20 + r * (size + caption + 8)
    draw.text((4, top + size // 2), label, fill=(0, 0, 0))
    for c, (image, score) in enumerate(zip(images, scores)):
      left = label_width + c * (size + 8)
      canvas.paste(Image.fromarray(image).resize((size, size), Image.NEAREST), (left, top))
      draw.text((left, top + size + 2), f"{score:.3f}", fill=(0, 0, 0))
  return np.asarray(canvas)


def _strip(images, labels, scores, size: int) -> np.ndarray:
  side, caption = size * charts.scale_for(size), 28
  canvas = Image.new("RGB", (len(images) * (side + 8) + 8, side + caption + 12),
                     (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for k, (image, label, score) in enumerate(zip(images, labels, scores)):
    left = 8 + k * (side + 8)
    canvas.paste(Image.fromarray(image).resize((side, side), Image.NEAREST), (left, 6))
    draw.text((left, side + 8), label, fill=(0, 0, 0))
    if np.isfinite(score):
      draw.text((left, side + 20), f"{score:.3f}", fill=(0, 0, 0))
  return np.asarray(canvas)
