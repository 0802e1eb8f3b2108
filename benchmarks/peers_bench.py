"""Peer cross-check: this project's BPR-MF, WARP and FM against Cornac and LightFM.

    pip install -e '.[peers]'      # Cornac 3.0.1 and LightFM (lightfm-next, from source)
    python -m benchmarks.peers_bench --data_dir=data/tfds \
        [--dataset=fashion_mnist_shoppers/demo] [--output=runs/benchmarks/peers.json]

On one split and one set of item features (PCA-128 of the items' pixels, `pca_features`),
each pair trains both sides and evaluates both with this project's `Evaluator` (the exact
AUC, all and cold, and the top-K metrics of the full ranking; the peers' scores are read from
their learned factors for every item, so both sides rank the same candidates):

| ours | peer |
|---|---|
| `bpr_mf` | Cornac `BPR` (SGD on uniformly drawn negatives; item bias) |
| `warp` | LightFM `loss='warp'` |
| `fm` (features) | LightFM `loss='bpr'`, item features = [identity, features] |
| `vbpr` (features) | the same LightFM model (the library offers no VBPR) |

Each side picks its hyper-parameters on validation AUC over its own small grid (the
regularisers of the three libraries are not on one scale) and trains to convergence: ours with
the trainer's patience, LightFM epoch by epoch with the same patience, Cornac over a grid of
its `max_iter`. The table reports test AUC (all, cold), HR@20 (= Recall@20), NDCG@20 and the
training seconds of the chosen point, and whether ours is within `TOLERANCE` AUC of the peer
or above it, all and cold.

Flags are read in `main` only; `run` takes a catalog and a `Config`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import files
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.evaluation import evaluator as evaluator_lib
from dvbpr_tf.training import pairwise_task

TOLERANCE = 0.005
PAIRS = (("bpr_mf", "cornac_bpr"), ("warp", "lightfm_warp"), ("fm", "lightfm_bpr_features"),
         ("vbpr", "lightfm_bpr_features"))
FEATURE_METHODS = ("fm", "vbpr")
SHOWN = ("auc_test", "auc_test_cold", "hr20_test", "ndcg20_test")
INSTALL = ("the peer libraries are not installed: pip install -e '.[peers]' (Cornac 3.0.1 and "
           "LightFM from the lightfm-next source distribution; see benchmarks/README.md)")


@dataclasses.dataclass(frozen=True)
class Config:
  """Attributes:
    dims, regs: our grid (K, the regulariser on the batch's rows).
    epochs, patience: our training (epochs at most; stop after `patience` epochs without a
      better validation AUC); LightFM's epochs and patience alike.
    cornac_regs, cornac_iterations, cornac_learning_rate: Cornac BPR's grid (lambda_reg,
      max_iter) and step size.
    lightfm_alphas, lightfm_learning_rate: LightFM's grid (user_alpha = item_alpha) and step.
    pca_dim, pca_image_size: the features: PCA of the pixels at that size, that many
      components.
    jit_compile: our training steps under XLA (as the demo preset's baselines).
    seed: every side's seed.
  """

  dims: tuple[int, ...] = (10, 50)
  regs: tuple[float, ...] = (0.001, 0.1, 10.0)
  epochs: int = 40
  patience: int = 3
  cornac_regs: tuple[float, ...] = (0.001, 0.01, 0.1)
  cornac_iterations: tuple[int, ...] = (100, 300)
  cornac_learning_rate: float = 0.01
  lightfm_alphas: tuple[float, ...] = (0.0, 1e-5, 1e-4)
  lightfm_learning_rate: float = 0.05
  pca_dim: int = 128
  pca_image_size: int = 32
  jit_compile: bool = True
  seed: int = 0


SIZES = {
    "tiny": Config(dims=(4,), regs=(0.01,), epochs=2, patience=1, cornac_regs=(0.01,),
                   cornac_iterations=(5,), lightfm_alphas=(0.0,), pca_dim=8,
                   pca_image_size=16),
    "full": Config(),
}


def pca_features(catalog: catalog_lib.Catalog, dim: int, image_size: int) -> np.ndarray:
  """[num_items, dim] float32: the items' pixels (RGB, `image_size` square, in [0, 1])
  projected on their first `dim` principal components (fewer when there are fewer items or
  pixels)."""
  pixels = []
  for jpeg in catalog.jpegs:
    image = tf.image.resize(tf.io.decode_jpeg(jpeg, channels=3), (image_size, image_size))
    pixels.append(image.numpy().reshape(-1) / 255.0)
  matrix = np.asarray(pixels, np.float64)
  matrix -= matrix.mean(axis=0)
  _, _, vt = np.linalg.svd(matrix, full_matrices=False)
  components = vt[:min(dim, len(vt))]
  return (matrix @ components.T).astype(np.float32)


def _figures(record: dict) -> dict:
  return {k: record.get(k) for k in ("auc_valid", *SHOWN)}


def train_ours(method: str, catalog, features, config: Config, folder) -> dict:
  """Our method over its grid, each point to its best validation epoch; the best point."""
  baseline = config_lib.BaselineConfig(regs=config.regs, dims=config.dims,
                                       epochs=config.epochs, patience=config.patience,
                                       bootstrap_resamples=0, jit_compile=config.jit_compile)
  best = None
  for dim in config.dims:
    for reg in config.regs:
      started = time.time()
      point = workdir_lib.Workdir(pathlib.Path(folder) / method / f"K{dim}_reg{reg:g}")
      record = pairwise_task.train_pairwise(method, catalog, features, baseline, dim, reg,
                                            point, config.seed)
      record = {**_figures(record), "params": {"K": dim, "reg": reg},
                "best_epoch": record["best_epoch"], "epochs": record["epochs_trained"],
                "train_seconds": time.time() - started,
                # The training steps' own rate (the trainer's median), evaluation excluded.
                "train_pairs_per_second": record["train_pairs_per_second"]}
      logging.info("ours %s K=%d reg=%g: valid AUC %.4f", method, dim, reg,
                   record["auc_valid"])
      if best is None or record["auc_valid"] > best["auc_valid"]:
        best = record
  return best


def _evaluate_factors(evaluator, user_vectors, item_vectors, item_bias) -> dict:
  """Our figures for x_ui = user_vectors[u] . item_vectors[i] + item_bias[i]."""
  ones = np.ones((len(user_vectors), 1), np.float32)
  return evaluator.evaluate_embeddings(
      np.hstack([np.asarray(user_vectors, np.float32), ones]),
      np.hstack([np.asarray(item_vectors, np.float32),
                 np.asarray(item_bias, np.float32).reshape(-1, 1)]))


def train_cornac_bpr(catalog, config: Config, evaluator) -> dict:
  """Cornac's BPR over its grid; every catalog item known to it (zero-count items keep
  their initial factors, as ours do)."""
  import cornac  # pylint: disable=g-import-not-at-top
  users, items = catalog.interactions("train")
  # Every user and item in Cornac's index, in our order: ids are our indices as strings.
  triples = [(str(u), str(i), 1.0) for u, i in zip(users, items)]
  uid_map = {str(u): u for u in range(catalog.num_users)}
  iid_map = {str(i): i for i in range(catalog.num_items)}
  train_set = cornac.data.Dataset.build(triples, fmt="UIR", global_uid_map=uid_map,
                                        global_iid_map=iid_map, seed=config.seed)
  best = None
  for dim in config.dims:
    for reg in config.cornac_regs:
      for iterations in config.cornac_iterations:
        model = cornac.models.BPR(k=dim, max_iter=iterations, lambda_reg=reg,
                                  learning_rate=config.cornac_learning_rate,
                                  seed=config.seed, verbose=False)
        started = time.time()
        model.fit(train_set)
        seconds = time.time() - started
        item_rows = np.asarray([train_set.iid_map[str(i)] for i in range(catalog.num_items)])
        user_rows = np.asarray([train_set.uid_map[str(u)] for u in range(catalog.num_users)])
        figures = _evaluate_factors(evaluator, model.u_factors[user_rows],
                                    model.i_factors[item_rows], model.i_biases[item_rows])
        record = {**_figures(figures), "params": {"k": dim, "lambda_reg": reg,
                                                  "max_iter": iterations},
                  "train_seconds": seconds,
                  "train_pairs_per_second": iterations * len(users) / max(seconds, 1e-9)}
        if best is None or record["auc_valid"] > best["auc_valid"]:
          best = record
  return best


def train_lightfm(loss: str, catalog, features, config: Config, evaluator) -> dict:
  """LightFM with `loss`, item features [identity, features] when `features` is given, over
  its grid; each point epoch by epoch to its best validation AUC (the same patience)."""
  from lightfm import LightFM  # pylint: disable=g-import-not-at-top
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  users, items = catalog.interactions("train")
  interactions = sparse.coo_matrix((np.ones(len(users), np.float32), (users, items)),
                                   shape=(catalog.num_users, catalog.num_items))
  item_features = None
  if features is not None:
    item_features = sparse.hstack([sparse.identity(catalog.num_items, np.float32, "csr"),
                                   sparse.csr_matrix(features)]).tocsr()
  best = None
  for dim in config.dims:
    for alpha in config.lightfm_alphas:
      model = LightFM(no_components=dim, loss=loss, learning_rate=config.lightfm_learning_rate,
                      item_alpha=alpha, user_alpha=alpha, random_state=config.seed)
      point, seconds, since = None, 0.0, 0
      for epoch in range(1, config.epochs + 1):
        started = time.time()
        model.fit_partial(interactions, item_features=item_features, epochs=1, num_threads=1)
        seconds += time.time() - started
        item_bias, item_vectors = model.get_item_representations(item_features)
        _, user_vectors = model.get_user_representations()
        figures = _evaluate_factors(evaluator, user_vectors, item_vectors, item_bias)
        if point is None or figures["auc_valid"] > point["auc_valid"]:
          point, since = {**_figures(figures), "params": {"no_components": dim,
                                                          "alpha": alpha},
                          "best_epoch": epoch, "train_seconds": seconds,
                          "train_pairs_per_second": epoch * len(users) / max(seconds, 1e-9)
                          }, 0
        else:
          since += 1
          if since >= config.patience:
            break
      point["epochs"] = epoch
      point["train_seconds_all_epochs"] = seconds
      if best is None or point["auc_valid"] > best["auc_valid"]:
        best = point
  return best


def peers_available() -> bool:
  try:
    import cornac  # pylint: disable=g-import-not-at-top,unused-import
    import lightfm  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def run(catalog: catalog_lib.Catalog, config: Config, folder) -> dict:
  """Both sides of every pair; {"rows": [...], "features": ...}."""
  if not peers_available():
    raise RuntimeError(INSTALL)
  features = pca_features(catalog, config.pca_dim, config.pca_image_size)
  evaluator = evaluator_lib.Evaluator(catalog, sampled_negatives=0, seed=config.seed)
  peers = {
      "cornac_bpr": lambda: train_cornac_bpr(catalog, config, evaluator),
      "lightfm_warp": lambda: train_lightfm("warp", catalog, None, config, evaluator),
      "lightfm_bpr_features": lambda: train_lightfm("bpr", catalog, features, config,
                                                    evaluator),
  }
  rows, peer_records = [], {}
  for ours_name, peer_name in PAIRS:
    ours = train_ours(ours_name, catalog, features if ours_name in FEATURE_METHODS else None,
                      config, folder)
    if peer_name not in peer_records:
      peer_records[peer_name] = peers[peer_name]()
    peer = peer_records[peer_name]
    gaps = {k: ours[k] - peer[k] for k in ("auc_test", "auc_test_cold")}
    rows.append({"ours": ours_name, "peer": peer_name, "ours_record": ours,
                 "peer_record": peer, "auc_gap": gaps,
                 "speed_ratio": (ours["train_pairs_per_second"] or 0)
                 / peer["train_pairs_per_second"],
                 "within_tolerance": all(g >= -TOLERANCE for g in gaps.values())})
    logging.info("%s vs %s: AUC %.4f / %.4f against %.4f / %.4f", ours_name, peer_name,
                 ours["auc_test"], ours["auc_test_cold"], peer["auc_test"],
                 peer["auc_test_cold"])
  return {"dataset": catalog.name, "features": f"PCA-{features.shape[1]} of the pixels at "
          f"{config.pca_image_size}x{config.pca_image_size}", "tolerance": TOLERANCE,
          "config": dataclasses.asdict(config), "rows": rows}


def markdown(document: dict) -> str:
  """The side-by-side table."""
  out = ["| ours | peer | test AUC all (ours / peer) | cold | HR@20 | NDCG@20 | valid AUC | "
         "train s (ours / peer) | training pairs/s (ours / peer) | speed ratio | "
         "ours within 0.005 or above |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
  for row in document["rows"]:
    a, b = row["ours_record"], row["peer_record"]
    cells = [f"{a[k]:.4f} / {b[k]:.4f}" for k in (*SHOWN, "auc_valid")]
    out.append(f"| {row['ours']} ({_params(a)}) | {row['peer']} ({_params(b)}) | "
               + " | ".join(cells)
               + f" | {a['train_seconds']:.1f} / {b['train_seconds']:.1f} | "
               f"{a['train_pairs_per_second'] or 0:,.0f} / {b['train_pairs_per_second']:,.0f} | "
               f"{row['speed_ratio']:.2f}x | {'yes' if row['within_tolerance'] else 'no'} |")
  return "\n".join(out) + "\n"


def _params(record: dict) -> str:
  return ", ".join(f"{k}={v:g}" for k, v in record["params"].items())


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags, defined only when it runs as a program (`benchmarks.run` defines a
  `--size` of its own, and the tests import both modules)."""
  flags.DEFINE_string("dataset", "fashion_mnist_shoppers/demo",
                      "The dataset (built or built now).")
  flags.DEFINE_string("data_dir", "data/tfds", "TFDS data dir.")
  flags.DEFINE_string("manual_dir", None, "Where the dataset's source files are, if needed.")
  flags.DEFINE_enum("size", "full", list(SIZES), "tiny: seconds; full: the README's table.")
  flags.DEFINE_string("output", "runs/benchmarks/peers.json", "Where the JSON goes.")


def main(argv) -> None:
  del argv
  if not peers_available():
    sys.exit(f"error: {INSTALL}")
  catalog = catalog_lib.load_catalog(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                     manual_dir=FLAGS.manual_dir)
  started = time.time()
  with tempfile.TemporaryDirectory(prefix="peers_bench_") as folder:
    document = run(catalog, SIZES[FLAGS.size], folder)
  document["seconds"] = time.time() - started
  document["command"] = " ".join(["python -m benchmarks.peers_bench", *sys.argv[1:]])
  files.write_json_atomic(files.make_dirs(pathlib.Path(FLAGS.output).parent)
                          / pathlib.Path(FLAGS.output).name, document)
  print(markdown(document), flush=True)
  print(f"{document['seconds']:.0f} s; JSON: {FLAGS.output}", flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
