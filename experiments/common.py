"""What every experiment shares: the run specification, dataset loading, result headers."""

from __future__ import annotations

import dataclasses
import json
import time

from absl import logging

from dvbpr_tf import catalog as catalog_lib
from dvbpr_tf import errors
from dvbpr_tf import workdir as workdir_lib

EMBEDDED_DATASET = "fashion_mnist_shoppers"
# The embedded dataset's config that goes with each preset, when --dataset is not given.
EMBEDDED_CONFIG_FOR_PRESET = {"smoke": "tiny", "demo": "demo", "paper": "full",
                              "authors": "full"}


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """The flags every experiment takes, resolved."""

  experiment: str
  dataset: str
  preset: str
  workdir: str
  data_dir: str | None
  manual_dir: str | None
  seed: int

  @property
  def work(self) -> workdir_lib.Workdir:
    return workdir_lib.Workdir(self.workdir)


def default_dataset(preset: str) -> str:
  return f"{EMBEDDED_DATASET}/{EMBEDDED_CONFIG_FOR_PRESET[preset]}"


def load_catalog(spec: RunSpec) -> catalog_lib.Catalog:
  start = time.time()
  catalog = catalog_lib.load_catalog(spec.dataset, data_dir=spec.data_dir,
                                     manual_dir=spec.manual_dir)
  logging.info("dataset %s: %d users, %d items, %d interactions (read in %.1fs from %s)",
               catalog.name, catalog.num_users, catalog.num_items, len(catalog.users),
               time.time() - start, catalog.data_path)
  return catalog


def check_same_run(work: workdir_lib.Workdir, config: dict) -> None:
  """Refuses a work dir that holds a run of another configuration: resuming its
  checkpoints into a different model would fail, or worse, half-succeed."""
  if not work.config_path.exists():
    return
  previous = json.loads(work.config_path.read_text())
  keys = [k for k in config if k != "run"]
  changed = [k for k in keys if previous.get(k) != json.loads(to_json(config[k]))]
  prev_run, run = previous.get("run", {}), config.get("run", {})
  changed += [f"--{k}" for k in ("experiment", "dataset", "seed")
              if k in prev_run and prev_run.get(k) != run.get(k)]
  if changed:
    raise errors.UserError(
        f"the work dir {work.root} holds a run with another configuration (differs in: "
        f"{', '.join(changed)}); rerun with the same flags to resume it, or choose a new "
        "--workdir")


def start_run(spec: RunSpec, run_config: dict, catalog=None):
  """Refuses a work dir of another configuration, loads the dataset (unless given), makes
  the work dir and records the configuration: (catalog, work dir)."""
  check_same_run(spec.work, run_config)
  catalog = catalog or load_catalog(spec)
  work = spec.work.make()
  work.write_config(run_config)
  return catalog, work


def results_header(spec: RunSpec, catalog: catalog_lib.Catalog) -> dict:
  """The fields every results.json starts with."""
  return {
      "experiment": spec.experiment,
      "dataset": catalog.name,
      "preset": spec.preset,
      "seed": spec.seed,
      "data_path": catalog.data_path,
      "dataset_statistics": dict(catalog.statistics),
  }


def oracle_fields(catalog: catalog_lib.Catalog) -> dict:
  """The planted model's AUC, for simulated data (empty for real data)."""
  return {k: catalog.statistics[k] for k in ("oracle_auc_test", "oracle_auc_test_cold",
                                             "oracle_auc_valid", "oracle_auc_valid_cold")
          if k in catalog.statistics}


def print_block(title: str, lines) -> None:
  print("\n" + title, flush=True)
  print("-" * len(title))
  for line in lines:
    print(line)
  print(flush=True)


def to_json(value) -> str:
  return json.dumps(value, indent=2, sort_keys=True)
