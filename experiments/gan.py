"""`--experiment=gan`: train the category-conditional LSGAN on a dataset's item images.

Writes into the work dir: `figures/samples.png` (rows: categories, at a fixed z),
`figures/nearest_neighbours.png` (each sample beside its L1-nearest real image of the same
category, paper Fig. 4), `export/gan/` (SavedModel: `generate`, `discriminate`),
`checkpoints/`, `logs/` (D real/fake, G, losses, images/s, sample grids), `results.json`.
"""

from __future__ import annotations

import dataclasses
import time

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import files
from dvbpr_tf.evaluation import image_metrics
from dvbpr_tf.evaluation import nearest_neighbours
from dvbpr_tf.reporting import charts
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from dvbpr_tf.serving import export as export_lib
from dvbpr_tf.training import gan_task
from dvbpr_tf.training import trainer as trainer_lib
from experiments import common


def run(spec: common.RunSpec, config: config_lib.GanTrainConfig, catalog=None) -> dict:
  started = time.time()
  run_config = {"run": spec.__dict__, "model": "gan", "gan": dataclasses.asdict(config)}
  # The category classifier (for the Fréchet distance) is trained outside the strategy.
  make_task = lambda data, scorer: gan_task.GanTask(data, config, scorer)
  catalog, work, task, strategy = common.start_training(
      spec, run_config, make_task, catalog, prepare=image_metrics.category_classifier)
  loop = trainer_lib.LoopConfig(
      epochs=config.epochs, steps_per_epoch=task.steps_per_epoch,
      steps_per_loop=min(config.steps_per_loop, task.steps_per_epoch),
      checkpoint_every_steps=config.sample_every_steps, best_metric="",
      jit_compile=config.jit_compile)
  logging.info("GAN: %d generator and %d discriminator parameters, %d categories, %dx%d; "
               "%d epochs of %d steps", task.generator.count_params(),
               task.discriminator.count_params(), catalog.num_categories,
               config.network.image_size, config.network.image_size, loop.epochs,
               loop.steps_per_epoch)
  summary = trainer_lib.Trainer(task, loop, work, strategy=strategy).run()

  samples = task.sample_grid()
  large = charts.enlarge(samples)  # At least 96 pixels a side on the figures.
  grid = gan_task.tile(large, config.samples_per_category)
  files.write_png_atomic(work.figures / "samples.png",
                         _with_row_labels(grid, catalog.category_names, large.shape[1]))
  real = task.real_images()
  sample_categories = task.grid_categories.numpy()
  nearest = nearest_neighbours.l1_nearest(samples, sample_categories, real,
                                          catalog.item_category)
  shown = np.concatenate([np.flatnonzero(sample_categories == c)[:2]
                          for c in range(catalog.num_categories)])
  files.write_png_atomic(work.figures / "nearest_neighbours.png", nearest_neighbours.side_by_side(
      charts.enlarge(samples[shown]), charts.enlarge(real[nearest[shown]])))
  export_path = export_lib.export_gan(task.inference_generator, task.discriminator,
                                      catalog.num_categories, config.network.z_dim,
                                      work.export("gan"))
  results = common.results_header(spec, catalog)
  results.update({
      "model": "gan",
      "config": dataclasses.asdict(config),
      "final_losses": summary["last_metrics"],
      "loss_history": [{k: h.get(k) for k in ("epoch", "step")} for h in summary["history"]],
      "steps": summary["steps"],
      "images_per_second": summary["train_rate_median"],
      "generator_parameters": int(task.generator.count_params()),
      "discriminator_parameters": int(task.discriminator.count_params()),
      "colour_fidelity": task.colour_fidelity(),
      "samples": str(work.figures / "samples.png"),
      "nearest_neighbours": str(work.figures / "nearest_neighbours.png"),
      "export": str(export_path),
      "wall_time_seconds": time.time() - started,
  })
  work.write_results(results)
  losses = summary["last_metrics"]
  common.print_block(f"GAN on {catalog.name} ({spec.preset} preset)", [
      f"  final D loss {losses.get('d_loss', float('nan')):.4f}  G loss "
      f"{losses.get('g_loss', float('nan')):.4f}  D(real) {losses.get('d_real', 0):.3f}  "
      f"D(fake) {losses.get('d_fake', 0):.3f}",
      f"  {summary['train_rate_median'] or 0:.0f} images/s, {summary['steps']} steps",
      "  colours, worst category: generated/real saturation "
      f"{results['colour_fidelity']['saturation_ratio_min']:.2f}, hue-histogram distance "
      f"{results['colour_fidelity']['hue_distance_max']:.3f} "
      f"({results['colour_fidelity']['hue_distance_over_real_halves_max']:.1f}x that of two "
      "halves of the real images)"] + ([
      f"  classifier Fréchet distance {results['colour_fidelity']['frechet_classifier']:.2f} "
      f"(two halves of the real images: "
      f"{results['colour_fidelity']['frechet_classifier_real_halves']:.2f})"]
      if "frechet_classifier" in results["colour_fidelity"] else []))
  report = html_report.write_report(work.root, f"Conditional LSGAN on {catalog.name}",
                                    results, sections.gan(results) + sections.dataset(results))
  print(f"Samples:     {results['samples']}\nNeighbours:  {results['nearest_neighbours']}\n"
        f"Export:      {export_path}\nResults:     {work.results_path}\n"
        f"Report:      {report}", flush=True)
  return results


def _with_row_labels(grid: np.ndarray, names, size: int, pad: int = 2) -> np.ndarray:
  """Puts each category's name left of its row."""
  width = 12 + 7 * max(len(n) for n in names)
  image = Image.new("RGB", (grid.shape[1] + width, grid.shape[0]), (255, 255, 255))
  image.paste(Image.fromarray(grid), (width, 0))
  draw = ImageDraw.Draw(image)
  for row, name in enumerate(names):
    draw.text((4, pad + row * (size + pad) + size // 2 - 5), name, fill=(0, 0, 0))
  return np.asarray(image)
