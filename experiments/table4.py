"""`--experiment=table4`: the paper's Table IV, preference, quality and diversity of the
top-3 images four sources give a user, over N trials.

Per trial (docs/reproduction.md §6): a random user u (among those with a test item) and c, the
category of u's test item; the sources, top-3 each:
  random_real       3 random real items of category c (X_c);
  random_generated  G(z, c) for 3 uniform random z;
  retrieval         delta(u, c), the 3 real items of c that u prefers most (eq. 8);
  synthesis         delta-hat(u, c), preference maximisation with softmax selection (eq. 11).
Metrics: preference = mean theta_u . Phi(image) of the 3 (eq. 6; real items through the
tower at its input size, generated ones Delta-upscaled); diversity = 1 - mean pairwise SSIM of
the 3 (scikit-image); both mean +- std over trials. Quality = the classifier score (the
Inception Score formula) of all images a source returned, pooled over the trials, mean +- std
over 10 splits; its classifier is named in every output (the Inception Score only when an
InceptionV3 with ImageNet weights is given by --quality=inception:<weights file>).
"""

from __future__ import annotations

import dataclasses
import time

from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf.core import files
from dvbpr_tf.data import input_pipeline
from dvbpr_tf.design import designer as design_lib
from dvbpr_tf.evaluation import image_metrics
from dvbpr_tf.reporting import html_report
from dvbpr_tf.reporting import sections
from dvbpr_tf.reporting import table4 as table4_lib
from experiments import common
from experiments import design as design_experiment

SOURCES = table4_lib.SOURCES


def run(spec: common.RunSpec, dvbpr_config, gan_config, config: design_lib.DesignConfig,
        trials: int, quality: str = "classifier", request=None) -> dict:
  started = time.time()
  catalog = common.load_catalog(spec)
  d_task, g_task, designer, work = design_experiment.load_models(
      spec, catalog, dvbpr_config, gan_config, request,
      {"design": dataclasses.asdict(config), "trials": trials, "quality": quality})
  scorer = image_metrics.quality_scorer_from_name(quality, catalog)
  size = g_task.network.image_size
  user_vectors, item_vectors = d_task.user_vectors(), d_task.item_vectors()
  test_users, test_items = catalog.interactions("test")
  rng = np.random.default_rng(spec.seed)
  embed = tf.function(lambda images: d_task.model.item_embeddings(
      design_lib.upscale(images, d_task.model.tower_config.input_size), training=False))

  # 'retrieved' starts add a fifth row on the same trials: the paper's delta-hat (random
  # starts, drawn from the trials' generator as always) stays beside it, and the tailored
  # one draws its softmax selections from a generator of its own, so the four paper rows are
  # what a run without it gives.
  tailored = config.start != "uniform"
  paper_config = dataclasses.replace(config, start="uniform", seed=0)
  tailored_rng = np.random.default_rng([spec.seed, 1])
  sources = SOURCES + ((table4_lib.TAILORED,) if tailored else ())
  tallies = {source: image_metrics.SourceTally() for source in sources}
  tick = time.time()
  for trial in range(trials):
    row = rng.integers(len(test_users))
    user, category = int(test_users[row]), int(catalog.item_category[test_items[row]])
    in_category = np.flatnonzero(catalog.item_category == category)
    theta = user_vectors[user]
    real_ids = rng.choice(in_category, min(3, len(in_category)), replace=False)
    retrieved, _ = design_lib.retrieve(theta, item_vectors, catalog.item_category, category, 3)
    z = design_lib.uniform_starts(3, g_task.network.z_dim, rng)
    random_generated = g_task.generator(np.tanh(z).astype(np.float32),
                                        tf.one_hot([category] * 3, catalog.num_categories),
                                        training=False).numpy()
    synthesis = designer.synthesize(user, category, paper_config, rng=rng)
    images = {
        "random_real": input_pipeline.decode_items(catalog.jpegs, real_ids, size),
        "random_generated": input_pipeline.to_uint8(random_generated),
        "retrieval": input_pipeline.decode_items(catalog.jpegs, retrieved, size),
        "synthesis": input_pipeline.to_uint8(synthesis.chosen_images),
    }
    preference = {
        "random_real": item_vectors[real_ids] @ theta,
        "random_generated": embed(random_generated).numpy() @ theta,
        "retrieval": item_vectors[retrieved] @ theta,
        "synthesis": synthesis.preference[synthesis.chosen],
    }
    if tailored:
      start = design_experiment.synthesis_start(designer, config, catalog, theta, item_vectors,
                                                category)
      result = designer.synthesize(user, category, dataclasses.replace(config, seed=0),
                                   start_z_prime=start, rng=tailored_rng)
      images[table4_lib.TAILORED] = input_pipeline.to_uint8(result.chosen_images)
      preference[table4_lib.TAILORED] = result.preference[result.chosen]
    for source in sources:
      tallies[source].add(preference[source], images[source], category)
    if (trial + 1) % 10 == 0 or trial + 1 == trials:
      rate = (trial + 1) / (time.time() - tick)
      logging.info("table4: trial %d/%d | %.2f trials/s | %.0fs left", trial + 1, trials, rate,
                   (trials - trial - 1) / rate)

  real = image_metrics.real_features(scorer, catalog, size)
  results_by_source = {source: tallies[source].summary(scorer, real) for source in sources}
  text = table4_lib.markdown(results_by_source, dataset=catalog.name, preset=spec.preset,
                             trials=trials, quality_name=scorer.name, eta=config.eta,
                             steps=config.steps, category_names=catalog.category_names)
  files.write_bytes_atomic(work.root / "table4.md", text.encode())
  files.write_bytes_atomic(work.root / "table4.csv",
                           table4_lib.csv_text(results_by_source).encode())
  results = common.results_header(spec, catalog)
  results.update({**results_by_source, "trials": trials, "quality_metric": scorer.name,
                  "design_config": dataclasses.asdict(config),
                  "wall_time_seconds": time.time() - started})
  work.write_results(results)
  print(text, flush=True)
  report = html_report.write_report(work.root, f"Table IV on {catalog.name}", results,
                                    sections.table4(results, table4_lib.LABELS))
  print(f"Table: {work.root / 'table4.md'}\nResults: {work.results_path}\nReport: {report}",
        flush=True)
  return results
