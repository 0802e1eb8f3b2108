"""The shared rules of the raw-feedback builders, on an interaction log built by hand."""

import dataclasses

import numpy as np
import pytest

from dvbpr_tf_datasets.common import drops as drops_lib
from dvbpr_tf_datasets.common import feedback_catalog
from dvbpr_tf_datasets.common import interactions
from dvbpr_tf_datasets.common import records
from tests import feedback_files


def _log(rows):
  log = interactions.InteractionLog()
  for row in rows:
    log.add(*row)
  return log


def _images(tmp_path, kinds):
  paths = {}
  for item, kind in kinds.items():
    path = tmp_path / f"{item}.img"
    path.write_bytes(feedback_files.image_bytes(len(paths), kind))
    paths[item] = path
  return paths


def test_an_undecodable_image_can_push_a_user_below_five(tmp_path):
  """u1 keeps 5 items after the first filter, loses one to a bad image, and is dropped in
  the second round; `b` was bought only by u1 and leaves the catalog with them."""
  images = _images(tmp_path, {i: "rgb" for i in "abcdefgh"} | {"x": "truncated"})
  rows = [("u1", i) for i in "abcdx"] + [("u2", i) for i in "cdefg"]
  rows += [("u3", i) for i in "acdeh"]
  drops = drops_lib.DropLog("test")
  catalog = feedback_catalog.build_catalog(
      _log(rows), image_path=images.get, images_root=tmp_path, categories={},
      missing_category_reason="no_row",
      config=feedback_catalog.FeedbackConfig(name="t", image_size=8), drops=drops)
  assert catalog.user_source_ids == ["u2", "u3"]
  assert catalog.source_ids == list("acdefgh")
  assert {k: v for k, v in catalog.statistics["dropped"].items() if v} == {
      "undecodable_images": 1, "interactions_of_dropped_items": 1, "users_below_5_items": 1,
      "interactions_of_users_below_5_items": 4, "items_whose_users_were_all_dropped": 1,
      "no_row": 7}
  assert catalog.dropped_examples["items_whose_users_were_all_dropped"] == ["b"]
  assert catalog.dropped_examples["undecodable_images"][0].startswith("x (")
  # Sorted by (user, item); dense ids follow the source ids.
  assert catalog.users.tolist() == [0] * 5 + [1] * 5
  assert catalog.items.tolist() == [1, 2, 3, 4, 5, 0, 1, 2, 3, 6]


def test_dense_ids_do_not_depend_on_row_order(tmp_path):
  images = _images(tmp_path, {i: "rgb" for i in "abcdef"})
  rows = [("u1", i) for i in "abcde"] + [("u0", i) for i in "bcdef"]
  build = lambda rows: feedback_catalog.build_catalog(
      _log(rows), image_path=images.get, images_root=tmp_path, categories={},
      missing_category_reason="no_row",
      config=feedback_catalog.FeedbackConfig(name="t", image_size=8),
      drops=drops_lib.DropLog("t"))
  one, two = build(rows), build(rows[::-1])
  for field in ("source_ids", "user_source_ids"):
    assert getattr(one, field) == getattr(two, field)
  for field in ("users", "items", "splits"):
    np.testing.assert_array_equal(getattr(one, field), getattr(two, field))


def test_config_is_checked_and_read_only():
  with pytest.raises(ValueError, match="split_method"):
    feedback_catalog.FeedbackConfig(name="t", split_method="latest")
  with pytest.raises(ValueError, match="sample_fraction"):
    feedback_catalog.FeedbackConfig(name="t", sample_fraction=0.0)
  config = feedback_catalog.FeedbackConfig(name="t")
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.seed = 3


def test_releasing_list_hands_out_each_image_once():
  images = records.ReleasingList([b"a", b"b"])
  assert len(images) == 2 and images[1] == b"b"
  with pytest.raises(RuntimeError, match="already written"):
    images[1]  # pylint: disable=pointless-statement
