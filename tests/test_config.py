"""The configuration tree: presets are whole trees, config.json round-trips, overrides are
scoped and checked where the fields are defined."""

import dataclasses
import json

import pytest

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors


@pytest.mark.parametrize("name", sorted(config_lib.PRESETS))
def test_every_preset_is_a_whole_tree_that_round_trips_through_json(name):
  tree = config_lib.preset(name)
  assert isinstance(tree, config_lib.ExperimentConfig)
  text = json.dumps(config_lib.as_dict(tree))
  assert config_lib.from_dict(config_lib.ExperimentConfig, json.loads(text)) == tree


def test_presets_differ_where_the_paper_and_the_code_differ():
  authors, paper = config_lib.preset("authors"), config_lib.preset("paper")
  assert (authors.dvbpr.tower.embedding_dim, paper.dvbpr.tower.embedding_dim) == (100, 50)
  assert (authors.gan.network.image_size, paper.gan.network.image_size) == (64, 128)
  assert authors.dvbpr.train == paper.dvbpr.train  # The rest is the authors' code.
  assert config_lib.preset("demo").dataset == "fashion_mnist_shoppers/demo"
  with pytest.raises(errors.ConfigError, match="unknown preset 'huge'"):
    config_lib.preset("huge")


def test_an_override_changes_one_model_only():
  tree = config_lib.preset("demo")
  changed = config_lib.override(tree, {"gan.learning_rate": 5e-4})
  assert changed.gan.learning_rate == 5e-4
  assert changed.dvbpr == tree.dvbpr and changed.baselines == tree.baselines
  assert dataclasses.replace(changed, gan=tree.gan) == tree


def test_the_seed_reaches_every_part():
  tree = config_lib.with_seed(config_lib.preset("smoke"), 7)
  assert (tree.seed, tree.dvbpr.seed, tree.gan.seed, tree.design.synthesis.seed) == (7,) * 4


def test_parse_overrides_reads_each_fields_type():
  changes = config_lib.parse_overrides(
      "dvbpr.tower.embedding_dim=50, gan.learning_rate=2e-4,dvbpr.train.run_eagerly=true,"
      "baselines.regs=0;0.1;10,baselines.features=file:/x.npy")
  assert changes == {"dvbpr.tower.embedding_dim": 50, "gan.learning_rate": 2e-4,
                     "dvbpr.train.run_eagerly": True, "baselines.regs": (0.0, 0.1, 10.0),
                     "baselines.features": "file:/x.npy"}
  tree = config_lib.override(config_lib.preset("smoke"), changes)
  assert tree.baselines.regs == (0.0, 0.1, 10.0) and tree.dvbpr.tower.embedding_dim == 50
  for text, message in (("dvbpr.tower.embedding_dim=ten", "must be a int, got 'ten'"),
                        ("nothing", "field=value pairs"),
                        ("dvbpr.towr.embedding_dim=5", "has no field 'towr'"),
                        ("gan.network=3", "set its fields one by one")):
    with pytest.raises(errors.ConfigError, match=message):
      config_lib.parse_overrides(text)


@pytest.mark.parametrize("changes, field, requirement", [
    ({"dvbpr.tower.embedding_dim": 0}, "dvbpr.tower.embedding_dim", "must be at least 1"),
    ({"dvbpr.pipeline.batch_size": -4}, "dvbpr.pipeline.batch_size", "must be at least 1"),
    ({"gan.learning_rate": 0.0}, "gan.learning_rate", "must be a finite number > 0"),
    ({"dvbpr.tower.dropout": 1.0}, "dvbpr.tower.dropout", "must be in [0, 1)"),
    ({"gan.network.image_size": 48}, "gan.network.image_size", "must be one of 32, 64, 128"),
    ({"design.synthesis.eta": -1.0}, "design.synthesis.eta", "must be a finite number >= 0"),
    ({"seed": 2**64}, "seed", "must be at most"),
    ({"dvbpr.tower.embedding_dim": 10**10}, "dvbpr.tower.embedding_dim", "must be at most"),
    # Fields without a bound of their own get checks.MAX_INTEGER (past 2^63 they would
    # overflow TensorFlow's int64 once the run began).
    ({"dvbpr.train.checkpoint_every_steps": 10**20}, "dvbpr.train.checkpoint_every_steps",
     "must be at most 2147483647"),
    ({"design.synthesis.num_starts": 10**11}, "design.synthesis.num_starts",
     "must be at most 16384"),
])
def test_checks_live_in_the_configs_and_name_the_whole_path(changes, field, requirement):
  with pytest.raises(errors.ConfigError) as raised:
    config_lib.override(config_lib.preset("smoke"), changes)
  assert raised.value.field == field
  assert raised.value.requirement.startswith(requirement)
  assert str(raised.value) == f"{field} {raised.value.requirement}"  # The path first.


def test_dvbpr_tower_and_pipeline_sizes_must_agree():
  with pytest.raises(errors.ConfigError, match="must be equal; set both with --image_size"):
    config_lib.override(config_lib.preset("smoke"), {"dvbpr.tower.input_size": 48})
