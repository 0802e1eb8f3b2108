"""The drop log: counts by reason, a few examples, one warning per reason."""

from dvbpr_tf_datasets.common import drops as drops_lib


def test_counts_examples_and_warnings(caplog):
  drops = drops_lib.DropLog("shop/default")
  drops.declare("items_without_image", "items dropped: no image file")
  drops.declare("duplicate_interactions", "rows dropped")
  drops.add("items_without_image", 30, (f"item{i}" for i in range(1000)))
  drops.add("items_without_image", 0, ["never"])
  drops.add("users_below_5_items", 2)
  assert drops.counts == {"duplicate_interactions": 0, "items_without_image": 30,
                          "users_below_5_items": 2}
  assert drops.examples == {
      "items_without_image": [f"item{i}" for i in range(drops_lib.MAX_EXAMPLES)]}
  with caplog.at_level("WARNING"):
    drops.warn()
  assert ("shop/default: items_without_image = 30 (items dropped: no image file), e.g. "
          "item0, item1, item2, item3, item4, ...") in caplog.text
  assert "users_below_5_items = 2 (users_below_5_items)\n" in caplog.text + "\n"
  assert "duplicate_interactions" not in caplog.text
