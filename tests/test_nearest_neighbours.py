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
  strip = nearest_neighbours.side_by_side(real[:2], real[2:4], pad=1)
  assert strip.shape == (2 * 4 + 1, 2 * 3 + 3, 3)
