"""Exact AUC against a brute-force NumPy oracle."""

import numpy as np
import pytest

from dvbpr_tf.evaluation import metrics


def brute_force_auc(scores, users, items, heldout_mask, candidates=None):
  """Loops over users and items exactly as the paper's formula reads."""
  num_items = scores.shape[1]
  candidates = np.ones(num_items, bool) if candidates is None else candidates
  result = {}
  for row in np.flatnonzero(heldout_mask):
    u, i = users[row], items[row]
    seen = set(items[users == u])
    negatives = [j for j in range(num_items) if j not in seen and candidates[j]]
    if negatives:
      result[u] = np.mean([scores[u, i] > scores[u, j] for j in negatives])
  return result


def test_hand_worked_case():
  # One user, 5 items. Train {0}, test item 1 with score 0.5. Negatives: 2, 3, 4 with scores
  # 0.1 (below), 0.5 (tie: not counted), 0.9 (above) -> AUC = 1/3.
  scores = np.array([[9.0, 0.5, 0.1, 0.5, 0.9]])
  users = np.array([0, 0])
  items = np.array([0, 1])
  heldout = metrics.HeldOut.from_interactions(users, items, np.array([False, True]), 1)
  auc = metrics.per_user_auc(lambda u: scores[u], heldout, 5)
  np.testing.assert_allclose(auc, [1 / 3])


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_with_ties_and_cold_items(seed):
  rng = np.random.default_rng(seed)
  num_users, num_items = 13, 17
  users, items, heldout_mask = [], [], []
  for u in range(num_users):
    picks = rng.choice(num_items, rng.integers(3, 8), replace=False)
    users += [u] * len(picks)
    items += list(picks)
    heldout_mask += [False] * (len(picks) - 1) + [True]
  users, items, heldout_mask = map(np.asarray, (users, items, heldout_mask))
  scores = rng.integers(0, 4, (num_users, num_items)).astype(float)  # many ties
  heldout = metrics.HeldOut.from_interactions(users, items, heldout_mask, num_users)
  expected = brute_force_auc(scores, users, items, heldout_mask)
  got = metrics.per_user_auc(lambda u: scores[u], heldout, num_items, chunk_size=4)
  np.testing.assert_allclose(got, [expected[u] for u in heldout.users])

  train_counts = np.bincount(items[~heldout_mask], minlength=num_items)
  cold_items = train_counts < 2
  result = metrics.auc_all_and_cold(lambda u: scores[u], heldout, train_counts,
                                    cold_threshold=2, chunk_size=5)
  cold_rows = cold_items[items] & heldout_mask
  cold_expected = brute_force_auc(scores, users, items, cold_rows, candidates=cold_items)
  assert result["auc"] == pytest.approx(np.mean(list(expected.values())))
  if cold_expected:
    assert result["auc_cold"] == pytest.approx(np.mean(list(cold_expected.values())))
    assert result["num_users_cold"] == len(cold_expected)


def test_excluded_items_are_not_negatives():
  # The user's train item 2 outranks the test item; were it a negative, AUC would be < 1.
  scores = np.array([[0.0, 0.5, 0.9, 0.1]])
  users, items = np.array([0, 0]), np.array([2, 1])
  heldout = metrics.HeldOut.from_interactions(users, items, np.array([False, True]), 1)
  np.testing.assert_allclose(metrics.per_user_auc(lambda u: scores[u], heldout, 4), [1.0])


def test_select_keeps_exclusions_aligned():
  users, items = np.array([0, 0, 1, 1, 1]), np.array([3, 1, 0, 2, 4])
  heldout = metrics.HeldOut.from_interactions(
      users, items, np.array([False, True, False, False, True]), 2)
  second = heldout.select(np.array([False, True]))
  assert second.users.tolist() == [1] and second.items.tolist() == [4]
  assert sorted(second.exclude_items.tolist()) == [0, 2, 4]


def test_two_heldout_items_for_one_user_is_refused():
  with pytest.raises(ValueError, match="more than one"):
    metrics.HeldOut.from_interactions(np.array([0, 0]), np.array([1, 2]),
                                      np.array([True, True]), 1)


def _random_case(seed, num_users=13, num_items=17, dim=3):
  """Interactions (a repeated pair included) and small-integer embeddings: every float32
  product is exact whatever the summation order, and scores tie often."""
  rng = np.random.default_rng(seed)
  users, items, heldout_mask = [], [], []
  for u in range(num_users):
    picks = list(rng.choice(num_items, rng.integers(3, 8), replace=False))
    picks.insert(0, picks[0])  # The same training pair twice: excluded once.
    users += [u] * len(picks)
    items += picks
    heldout_mask += [False] * (len(picks) - 1) + [True]
  users, items, heldout_mask = map(np.asarray, (users, items, heldout_mask))
  theta = rng.integers(-2, 3, (num_users, dim)).astype(np.float32)
  phi = rng.integers(-2, 3, (num_items, dim)).astype(np.float32)
  return users, items, heldout_mask, theta, phi


@pytest.mark.parametrize("seed", range(4))
def test_embedding_path_matches_brute_force_with_ties(seed):
  users, items, heldout_mask, theta, phi = _random_case(seed)
  scores = theta @ phi.T
  num_users, num_items = scores.shape
  heldout = metrics.HeldOut.from_interactions(users, items, heldout_mask, num_users)
  expected = brute_force_auc(scores, users, items, heldout_mask)
  got = metrics.per_user_auc_from_embeddings(theta, phi, heldout, chunk_size=5)
  np.testing.assert_allclose(got, [expected[u] for u in heldout.users])
  np.testing.assert_array_equal(got, metrics.per_user_auc(lambda u: scores[u], heldout,
                                                          num_items, chunk_size=4))

  candidates = np.arange(num_items) % 3 != 0
  cand_expected = brute_force_auc(scores, users, items, heldout_mask, candidates)
  got = metrics.per_user_auc_from_embeddings(theta, phi, heldout, candidates, chunk_size=4)
  np.testing.assert_allclose(got, [cand_expected.get(u, np.nan) for u in heldout.users])

  train_counts = np.bincount(items[~heldout_mask], minlength=num_items)
  fast = metrics.auc_all_and_cold_from_embeddings(theta, phi, heldout, train_counts,
                                                  cold_threshold=2, chunk_size=6)
  reference = metrics.auc_all_and_cold(lambda u: scores[u], heldout, train_counts,
                                       cold_threshold=2, chunk_size=5)
  assert fast.keys() == reference.keys()
  for key, value in reference.items():
    np.testing.assert_array_equal(fast[key], value)


@pytest.mark.parametrize("seed", range(2))
def test_embedding_products_on_a_strategys_devices_match_the_host(seed):
  # Chunks dealt round-robin to the devices (here the one CPU named twice, as two replicas
  # of a strategy would be): the same counts as NumPy on the host, ties included.
  users, items, heldout_mask, theta, phi = _random_case(seed)
  heldout = metrics.HeldOut.from_interactions(users, items, heldout_mask, len(theta))
  train_counts = np.bincount(items[~heldout_mask], minlength=len(phi))
  host = metrics.auc_all_and_cold_from_embeddings(theta, phi, heldout, train_counts,
                                                  cold_threshold=2, chunk_size=3)
  placed = metrics.auc_all_and_cold_from_embeddings(theta, phi, heldout, train_counts,
                                                    cold_threshold=2, chunk_size=3,
                                                    devices=["/cpu:0", "/cpu:0"])
  assert placed.keys() == host.keys()
  for key, value in host.items():
    np.testing.assert_array_equal(placed[key], value)  # NaN == NaN here.
  np.testing.assert_array_equal(
      metrics.per_user_auc_from_embeddings(theta, phi, heldout, chunk_size=4,
                                           devices=["/cpu:0"]),
      metrics.per_user_auc_from_embeddings(theta, phi, heldout, chunk_size=4))


def test_embedding_path_hand_worked_tie():
  # theta = [1], phi = [0.5, 0.5, 0.1, 0.9]: train {3}, test item 0 (0.5). Negatives 1 (tie:
  # not counted) and 2 (below) -> AUC = 1/2.
  heldout = metrics.HeldOut.from_interactions(np.array([0, 0]), np.array([3, 0]),
                                              np.array([False, True]), 1)
  got = metrics.per_user_auc_from_embeddings(np.array([[1.0]]),
                                             np.array([[0.5], [0.5], [0.1], [0.9]]), heldout)
  np.testing.assert_allclose(got, [0.5])


def _sampled_auc_oracle(scores, heldout, train, samples):
  """The authors' loop, in plain Python over the drawn samples: skip the user's training
  items and the held-out item, count x_ui > x_uj, average over users with a negative."""
  per_user = []
  for row, (user, item) in enumerate(zip(heldout.users, heldout.items)):
    negatives = [j for j in samples[row] if j not in train[user] and j != item]
    if negatives:
      per_user.append(np.mean([scores[user, item] > scores[user, j] for j in negatives]))
  return float(np.mean(per_user))


def _last_item_held_out(rng, num_users, num_items, per_user):
  """`per_user` distinct items per user, the last held out: (users, items, test mask,
  HeldOut, training pair keys)."""
  users = np.repeat(np.arange(num_users), per_user)
  items = np.concatenate([rng.choice(num_items, per_user, replace=False)
                          for _ in range(num_users)])
  test = np.tile([False] * (per_user - 1) + [True], num_users)
  heldout = metrics.HeldOut.from_interactions(users, items, test, num_users)
  keys = metrics.train_pair_keys(users[~test], items[~test], num_items)
  return users, items, test, heldout, keys


def test_sampled_auc_equals_the_authors_loop_on_its_own_draws(monkeypatch):
  rng = np.random.default_rng(3)
  num_users, num_items = 40, 300
  users, items, test, heldout, keys = _last_item_held_out(rng, num_users, num_items, 6)
  train = {u: set(items[(users == u) & ~test].tolist()) for u in range(num_users)}
  scores = np.round(rng.normal(size=(num_users, num_items)), 1)  # Ties happen.
  drawn = []
  original = metrics._distinct_uniform  # pylint: disable=protected-access

  def recording(*args):
    drawn.append(original(*args))
    return drawn[-1]

  monkeypatch.setattr(metrics, "_distinct_uniform", recording)
  auc = metrics.sampled_auc(lambda u: scores[u], heldout, keys, num_items, num_samples=100,
                            seed=5, chunk_size=16)
  assert len(drawn) == 3  # 40 users in chunks of 16.
  assert auc == pytest.approx(_sampled_auc_oracle(scores, heldout, train,
                                                  np.concatenate(drawn)), abs=1e-12)


def test_sampled_auc_from_embeddings_scores_only_the_draws_and_equals_sampled_auc():
  rng = np.random.default_rng(8)
  num_users, num_items = 30, 500
  _, _, _, heldout, keys = _last_item_held_out(rng, num_users, num_items, 4)
  theta = rng.integers(-2, 3, (num_users, 3)).astype(np.float32)  # Exact products, ties.
  phi = rng.integers(-2, 3, (num_items, 3)).astype(np.float32)
  scores = theta @ phi.T
  kwargs = dict(num_samples=50, seed=2, chunk_size=8, per_user=True)
  np.testing.assert_array_equal(
      metrics.sampled_auc_from_embeddings(theta, phi, heldout, keys, **kwargs),
      metrics.sampled_auc(lambda u: scores[u], heldout, keys, num_items, **kwargs))


def test_sampled_auc_on_a_hand_worked_case():
  # 1 user, 5 items, all drawn (100 >= 5): train {0}, test item 1 with score 2; the
  # negatives left are items 2, 3, 4 with scores 1, 3, 2 (a tie, not counted): 1 of 3.
  heldout = metrics.HeldOut.from_interactions([0, 0], [0, 1], [False, True], 1)
  keys = metrics.train_pair_keys(np.array([0]), np.array([0]), 5)
  scores = np.array([[9.0, 2.0, 1.0, 3.0, 2.0]])
  assert metrics.sampled_auc(lambda u: scores[u], heldout, keys, 5) == pytest.approx(1 / 3)
  np.testing.assert_allclose(
      metrics.sampled_auc(lambda u: scores[u], heldout, keys, 5, per_user=True), [1 / 3])


@pytest.mark.parametrize("n, draws", [(1000, 100), (120, 100)])  # Sparse and dense paths.
def test_distinct_draws_are_distinct_in_range_and_uniform(n, draws):
  rng = np.random.default_rng(0)
  samples = metrics._distinct_uniform(rng, 400, draws, n)  # pylint: disable=protected-access
  assert samples.shape == (400, draws) and samples.dtype == np.int64
  assert samples.min() >= 0 and samples.max() < n
  assert all(len(set(row)) == draws for row in samples)
  counts = np.bincount(samples.ravel(), minlength=n)
  expected = 400 * draws / n
  chi2 = float(np.sum((counts - expected) ** 2 / expected))
  # Mean n - 1, sd sqrt(2 (n - 1)) for independent cells; a biased draw is far above.
  assert chi2 < (n - 1) + 6 * np.sqrt(2 * (n - 1)), chi2


# --- Top-K metrics on the full ranking ----------------------------------------------------

def _three_users():
  """80 items scored -item by every user (item 0 first). User 0: held out 14, train 3, and
  item 30 tied with 14 -> 13 negatives above and one tie: rank 15. User 1: held out 5 (cold):
  rank 6. User 2: held out 60 (cold), train 2 and 70: 59 negatives above, rank 60. Cold items
  {5, 10, 20, 60, 61, 62}: user 1 has none of its cold negatives above it (rank 1), user 2 has
  5, 10 and 20 (rank 4)."""
  num_items = 80
  scores = -np.tile(np.arange(num_items, dtype=float), (3, 1))
  scores[0, 30] = scores[0, 14]
  users = np.array([0, 0, 1, 2, 2, 2])
  items = np.array([3, 14, 5, 2, 70, 60])
  mask = np.array([False, True, True, False, False, True])
  heldout = metrics.HeldOut.from_interactions(users, items, mask, 3)
  train_counts = np.full(num_items, 10)
  train_counts[[5, 10, 20, 60, 61, 62]] = 1
  return scores, heldout, train_counts


def test_top_k_hand_worked_ranks_ties_and_cold_settings():
  scores, heldout, train_counts = _three_users()
  result = metrics.auc_all_and_cold(lambda u: scores[u], heldout, train_counts,
                                    per_user=True)
  values = result["per_user"]
  rank = np.array([15, 6, 60])
  np.testing.assert_allclose(values["mrr"], 1 / rank)
  np.testing.assert_array_equal(values["hr10"], [0, 1, 0])
  np.testing.assert_array_equal(values["hr20"], [1, 1, 0])
  np.testing.assert_array_equal(values["hr50"], [1, 1, 0])
  np.testing.assert_allclose(values["ndcg20"], [1 / np.log2(16), 1 / np.log2(7), 0])
  # AUC_u = 1 - (rank - 1) / negatives: 78, 79, 77 negatives.
  np.testing.assert_allclose(values["auc"], 1 - (rank - 1) / np.array([78, 79, 77]))
  # Cold users among cold items: ranks 1 and 4; among all items: 6 and 60.
  np.testing.assert_allclose(values["mrr_cold"], [np.nan, 1, 1 / 4])
  np.testing.assert_allclose(values["ndcg10_cold"], [np.nan, 1, 1 / np.log2(5)])
  np.testing.assert_allclose(values["hr10_cold_all_items"], [np.nan, 1, 0])
  assert result["hr10"] == pytest.approx(1 / 3)
  assert result["hr10_cold"] == 1.0
  assert result["hr10_cold_all_items"] == 0.5
  assert result["mrr_cold"] == pytest.approx((1 + 1 / 4) / 2)
  for name, per_user in values.items():  # Each figure is the mean of its users' values.
    assert result[name] == pytest.approx(np.nanmean(per_user)), name


def test_top_k_embedding_path_equals_the_score_rows_path():
  rng = np.random.default_rng(3)
  theta = rng.integers(-2, 3, (20, 3)).astype(np.float32)  # Exact products, many ties.
  phi = rng.integers(-2, 3, (90, 3)).astype(np.float32)
  users = np.repeat(np.arange(20), 3)
  items = np.array([rng.choice(90, 3, replace=False) for _ in range(20)]).ravel()
  mask = np.tile([False, False, True], 20)
  heldout = metrics.HeldOut.from_interactions(users, items, mask, 20)
  train_counts = rng.integers(0, 8, 90)
  fast = metrics.auc_all_and_cold_from_embeddings(theta, phi, heldout, train_counts,
                                                  chunk_size=7, per_user=True)
  slow = metrics.auc_all_and_cold(lambda u: theta[u] @ phi.T, heldout, train_counts,
                                  chunk_size=5, per_user=True)
  assert fast["per_user"].keys() == slow["per_user"].keys()
  for name in slow["per_user"]:
    np.testing.assert_array_equal(fast["per_user"][name], slow["per_user"][name])


def test_top_k_values_of_no_negative_are_nan():
  values = metrics.top_k_values(np.array([np.nan, 1.0]), ks=(1,))
  np.testing.assert_array_equal(values["hr1"], [np.nan, 1.0])
  np.testing.assert_array_equal(values["ndcg1"], [np.nan, 1.0])
  np.testing.assert_array_equal(values["mrr"], [np.nan, 1.0])
