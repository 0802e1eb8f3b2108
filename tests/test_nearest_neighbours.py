"""L1 nearest real images, against a brute-force loop."""

import numpy as np

from dvbpr_tf.evaluation import nearest_neighbours


def test_matches_brute_force_within_category():
  rng = np.random.default_rng(0)
  real = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
  real_categories = rng.integers(0, 3, 40)
  samples = rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
  sample_categories = np.array([0, 1, 2, 0, 1, 2, 0])
  got = nearest_neighbours.l1_nearest(samples, sample_categories, real, real_categories,
                                      chunk_size=5)
  for k in range(7):
    same = [j for j in range(40) if real_categories[j] == sample_categories[k]]
    distances = [np.abs(samples[k].astype(int) - real[j].astype(int)).sum() for j in same]
    assert got[k] == same[int(np.argmin(distances))]


def test_a_copy_finds_itself_and_missing_category_is_minus_one():
  rng = np.random.default_rng(1)
  real = rng.integers(0, 256, (10, 3, 3, 3), dtype=np.uint8)
  got = nearest_neighbours.l1_nearest(real[[4, 7]], np.array([0, 5]), real, np.zeros(10, int))
  assert got.tolist() == [4, -1]
  pairs = nearest_neighbours.side_by_side(real[:5], real[5:10], pad=1, pairs_per_row=2)
  # 3 rows of pairs; each pair 3 + 1 + 3 pixels wide, pairs 3 pixels apart.
  assert pairs.shape == (3 * (3 + 1) + 1, 2 * (7 + 3) + 1, 3)
  np.testing.assert_array_equal(pairs[1:4, 1:4], real[0])  # First sample, top left,
  np.testing.assert_array_equal(pairs[1:4, 5:8], real[5])  # beside its neighbour.
  np.testing.assert_array_equal(pairs[9:12, 1:4], real[4])  # The fifth starts row three.


def test_figures_enlarge_small_images_by_whole_factors():
  from dvbpr_tf.reporting import charts  # pylint: disable=g-import-not-at-top
  image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(1, 2, 2, 3)
  big = charts.enlarge(image, min_side=5)
  assert big.shape == (1, 6, 6, 3) and charts.scale_for(32) == 3 and charts.scale_for(128) == 1
  np.testing.assert_array_equal(big[0, :3, :3], np.broadcast_to(image[0, 0, 0], (3, 3, 3)))
