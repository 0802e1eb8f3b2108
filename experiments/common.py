"""What every experiment shares: the run specification, dataset loading, result headers."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import typing

from absl import logging
import tensorflow as tf

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import distribution
from dvbpr_tf.core import errors
from dvbpr_tf.core import workdir as workdir_lib
from dvbpr_tf.data import catalog as catalog_lib
from dvbpr_tf.evaluation import planted

@dataclasses.dataclass(frozen=True)
class RunSpec:
  """The flags every experiment takes, resolved.

  `strategy`, `mixed_precision` and `virtual_cpus` say where training runs (see
  dvbpr_tf/core/distribution.py). In a multi-worker cluster every worker runs the same command;
  the chief writes the work dir, any other worker writes its own copies (checkpoints are
  collective operations) under `<workdir>/workers/<id>/`.
  """

  experiment: str
  dataset: str
  preset: str
  workdir: str
  data_dir: str | None
  manual_dir: str | None
  seed: int
  strategy: str = "default"
  mixed_precision: bool = False
  virtual_cpus: int = 0
  tree: dict | None = None  # The whole resolved configuration (config.as_dict), for the record.

  @property
  def distribution(self) -> distribution.DistributionConfig:
    return distribution.DistributionConfig(strategy=self.strategy,
                                           mixed_precision=self.mixed_precision,
                                           virtual_cpus=self.virtual_cpus)

  def make_strategy(self) -> tf.distribute.Strategy | None:
    """The run's strategy (None: one device), made once per process."""
    return distribution.make_strategy(self.distribution)

  @property
  def work(self) -> workdir_lib.Workdir:
    worker = distribution.worker_id(self.distribution)
    if worker is None:
      return workdir_lib.Workdir(self.workdir)
    return workdir_lib.Workdir(os.path.join(self.workdir, "workers", str(worker)))


def load_catalog(spec: RunSpec) -> catalog_lib.Catalog:
  start = time.time()
  catalog = catalog_lib.load_catalog(spec.dataset, data_dir=spec.data_dir,
                                     manual_dir=spec.manual_dir)
  oracle = planted.planted_statistics(catalog)  # Simulated data: the planted model's AUC.
  if oracle:
    catalog = dataclasses.replace(catalog, statistics={**catalog.statistics, **oracle})
  logging.info("dataset %s: %d users, %d items, %d interactions (read in %.1fs from %s)",
               catalog.name, catalog.num_users, catalog.num_items, len(catalog.users),
               time.time() - start, catalog.data_path)
  return catalog


def check_same_run(work: workdir_lib.Workdir, config: dict) -> None:
  """Refuses a work dir that holds a run of another configuration: resuming its
  checkpoints into a different model would fail, or worse, half-succeed."""
  if not work.config_path.exists():
    return
  previous = saved_config(work)
  keys = [k for k in config if k not in ("run", DATASET_KEY)]
  changed = [k for k in keys
             if _with_defaults(k, previous.get(k)) != json.loads(to_json(config[k]))]
  prev_run, run = previous.get("run", {}), config.get("run", {})
  changed += [f"--{k}" for k in ("experiment", "dataset", "seed")
              if k in prev_run and prev_run.get(k) != run.get(k)]
  if changed:
    raise errors.UserError(
        f"the work dir {work.root} holds a run with another configuration (differs in: "
        f"{', '.join(changed)}); rerun with the same flags to resume it, or choose a new "
        "--workdir")


def refuse_other_experiment(work: workdir_lib.Workdir, experiment: str, output: str) -> None:
  """Refuses a work dir whose config.json records another experiment's run (a command that
  serves a trained model would overwrite its config.json and results.json), naming the DVBPR
  it holds, if any, for --dvbpr_workdir. `output`: what the command writes, for the message."""
  if not work.config_path.exists():
    return
  run = saved_config(work).get("run")
  previous = run.get("experiment") if isinstance(run, dict) else None
  if previous == experiment:
    return
  hint = ""
  for root in (work.root, work.root / "dvbpr"):
    if (workdir_lib.Workdir(root).export("dvbpr") / "saved_model.pb").is_file():
      hint = f" (--dvbpr_workdir={root} uses the DVBPR trained there)"
      break
  raise errors.UserError(f"the work dir {work.root} holds a {previous or 'another'} run; "
                         f"choose another --workdir for {output}{hint}")


def _with_defaults(section: str, saved):
  """A config.json section as this version writes it: a field added since the run was
  written takes its default, which keeps the behaviour the run had (a new option is off by
  default), so an older run still resumes. Sections that are not a config tree, or that this
  version cannot read, come back as they were (and then differ)."""
  kind = _SECTIONS.get(section)
  if kind is None or not isinstance(saved, dict):
    return saved
  try:
    normalised = json.loads(to_json(config_lib.as_dict(config_lib.from_dict(kind, saved))))
  except (TypeError, ValueError):  # ConfigError is a ValueError.
    return saved
  return normalised if _only_known_fields(saved, normalised) else saved


def _only_known_fields(saved: dict, normalised: dict) -> bool:
  """Whether every field of `saved` (nested) is one this version has: a field of a later
  version is not dropped, so that its run is not resumed as if it had not been set."""
  return all(key in normalised and (not isinstance(value, dict) or (
      isinstance(normalised[key], dict) and _only_known_fields(value, normalised[key])))
             for key, value in saved.items())


_SECTIONS = {name: kind for name, kind in
             typing.get_type_hints(config_lib.ExperimentConfig).items()
             if dataclasses.is_dataclass(kind)}


DATASET_KEY = "dataset_sizes"  # In config.json: the sizes of the data the run trained on.


def dataset_sizes(catalog: catalog_lib.Catalog) -> dict:
  """What a checkpoint's shapes depend on: users (theta_u), items, categories (the GAN)."""
  return {"name": catalog.name, "num_users": int(catalog.num_users),
          "num_items": int(catalog.num_items), "num_categories": int(catalog.num_categories)}


def check_same_dataset(work: workdir_lib.Workdir, catalog: catalog_lib.Catalog,
                       saved: dict | None = None) -> None:
  """Refuses a work dir whose checkpoints were trained on other data: a dataset of the same
  name rebuilt from other files (more users, other categories) would not fit them.

  For resuming a run (`start_run`) and for loading a trained model from its work dir.

  Args:
    work: the work dir.
    catalog: the dataset as it is now.
    saved: the work dir's config.json when the caller has read it already.

  Raises:
    errors.UserError: the sizes recorded in the work dir's config.json differ from the
      catalog's.
  """
  if saved is None:
    if not work.config_path.exists():
      return
    saved = saved_config(work)
  saved = saved.get(DATASET_KEY)
  if not isinstance(saved, dict):
    return  # Written before the sizes were recorded: nothing to compare.
  now = dataset_sizes(catalog)
  changed = [f"{key[4:]} {saved.get(key)} -> {now[key]}"
             for key in ("num_users", "num_items", "num_categories")
             if saved.get(key) is not None and saved.get(key) != now[key]]
  if changed:
    raise errors.UserError(
        f"the work dir {work.root} holds checkpoints trained on {saved.get('name')} with "
        f"other sizes than the dataset {now['name']} has now ({', '.join(changed)}): it was "
        "trained on other data (the dataset was rebuilt from other files, or is another "
        "one); train anew in another work dir")


def saved_config(work: workdir_lib.Workdir) -> dict:
  """The work dir's config.json (UserError if it is unreadable or not a run's)."""
  try:
    saved = json.loads(work.config_path.read_text())
  except (OSError, ValueError) as e:
    raise errors.UserError(
        f"{work.config_path} cannot be read ({e}); it was not written by this project, or "
        "was damaged: choose a new --workdir") from e
  if not isinstance(saved, dict):
    raise errors.UserError(f"{work.config_path} is not a run configuration; choose a new "
                           "--workdir")
  return saved


def start_run(spec: RunSpec, run_config: dict, catalog=None, resumable: bool = True):
  """Starts (or resumes) a run in its work dir: (catalog, work dir). Every experiment starts
  here.

  Refuses, before writing anything, a work dir of another configuration or of other data
  (`check_same_run`, `check_same_dataset`); loads the dataset (unless given); makes the work
  dir; takes its lock (`Workdir.lock`: a second live run in the same work dir is refused, the
  lock of a killed one is taken over); records the configuration and the dataset's sizes.
  A run that keeps no state of its own to resume (`resumable=False`: design, tailoring,
  Table IV and the eta sweep over trained models, a dataset's statistics) may follow another
  configuration in the same work dir; its config.json then says what ran last.

  The lock is held until the process exits: the experiments go on writing into the work dir
  after this returns (training, export, results), and the kernel drops it however the
  process ends. The same process may start several runs, in other work dirs (the demo's
  `dvbpr/` and `gan/`) or in the same one again.
  """
  if resumable:
    check_same_run(spec.work, run_config)
  catalog = catalog or load_catalog(spec)
  check_same_dataset(spec.work, catalog)
  work = spec.work.make()
  work.lock()
  # Checked again under the lock: a run that just ended may have written its config.
  if resumable:
    check_same_run(work, run_config)
  check_same_dataset(work, catalog)
  work.write_config({**run_config, DATASET_KEY: dataset_sizes(catalog)})
  return catalog, work


def start_training(spec: RunSpec, run_config: dict, make_task, catalog=None, prepare=None):
  """`start_run`, then the task made (`make_task(catalog)`) in the run's strategy scope:
  (catalog, work dir, task, strategy; None for one device). With `prepare`, its result
  `prepare(catalog)`, made outside that scope (a helper model the strategy must not
  replicate, e.g. the category classifier, trained on first use), is `make_task`'s second
  argument."""
  catalog, work = start_run(spec, run_config, catalog)
  strategy = spec.make_strategy()
  extra = () if prepare is None else (prepare(catalog),)
  with distribution.scope(strategy):
    task = make_task(catalog, *extra)
  return catalog, work, task, strategy


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


CEILING_KEYS = ("oracle_auc_test", "oracle_auc_test_cold", "oracle_auc_valid",
                "oracle_auc_valid_cold", "learnable_auc_test", "learnable_auc_test_cold",
                "learnable_auc_valid", "learnable_auc_valid_cold")


def oracle_fields(catalog: catalog_lib.Catalog) -> dict:
  """For simulated data (empty for real data): the planted model's AUC and the learnable
  ceiling (evaluation/planted.py)."""
  return {k: catalog.statistics[k] for k in CEILING_KEYS if k in catalog.statistics}


def print_block(title: str, lines) -> None:
  print("\n" + title, flush=True)
  print("-" * len(title))
  for line in lines:
    print(line)
  print(flush=True)


def to_json(value) -> str:
  return json.dumps(value, indent=2, sort_keys=True)
