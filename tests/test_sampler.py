"""The BPR triplet sampler: negatives never in I_u^+, determinism, resumable state."""

import numpy as np
import tensorflow as tf

from dvbpr_tf.data import sampler as sampler_lib


def _random_interactions(seed=0, num_users=30, num_items=25):
  rng = np.random.default_rng(seed)
  users, items = [], []
  for u in range(num_users):
    # Some users own most of the catalog, so that rejection is exercised hard.
    picks = rng.choice(num_items, rng.integers(1, num_items - 2), replace=False)
    users += [u] * len(picks)
    items += list(picks)
  return np.asarray(users), np.asarray(items), num_users, num_items


def test_negatives_never_in_training_set_and_positives_always():
  users, items, num_users, num_items = _random_interactions()
  owned = {(u, i) for u, i in zip(users, items)}
  sampler = sampler_lib.TripletSampler(users, items, num_users, num_items, seed=3)
  seen_users = set()
  for batch in sampler.dataset(batch_size=256).take(200):
    for u, i, j in zip(batch["user"].numpy(), batch["pos"].numpy(), batch["neg"].numpy()):
      assert (u, i) in owned
      assert (u, j) not in owned
      seen_users.add(u)
  assert seen_users == set(range(num_users))


def test_distributions_match_the_authors_sampler():
  # Two users: user 0 owns items {0, 1}, user 1 owns {2}; 6 items. Users uniform (1/2 each);
  # user 0's positive uniform over {0, 1}; user 1's negative uniform over {0, 1, 3, 4, 5}.
  sampler = sampler_lib.TripletSampler([0, 0, 1], [0, 1, 2], 2, 6, seed=0)
  batch = sampler.sample(tf.constant(7), 40000)
  user, pos, neg = (batch[k].numpy() for k in ("user", "pos", "neg"))
  assert abs(np.mean(user == 0) - 0.5) < 0.01
  assert abs(np.mean(pos[user == 0] == 0) - 0.5) < 0.015
  frequencies = np.bincount(neg[user == 1], minlength=6) / np.sum(user == 1)
  np.testing.assert_allclose(frequencies, [0.2, 0.2, 0, 0.2, 0.2, 0.2], atol=0.015)


def test_same_seed_same_batches_and_resume_continues(tmp_path):
  users, items, num_users, num_items = _random_interactions(seed=1)
  a = sampler_lib.TripletSampler(users, items, num_users, num_items, seed=5)
  b = sampler_lib.TripletSampler(users, items, num_users, num_items, seed=5)
  c = sampler_lib.TripletSampler(users, items, num_users, num_items, seed=6)
  first = [x["neg"].numpy() for x in a.dataset(64).take(6)]
  again = [x["neg"].numpy() for x in b.dataset(64).take(6)]
  other = [x["neg"].numpy() for x in c.dataset(64).take(6)]
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  # The state is the next batch index: a sampler restored at position 4 continues exactly.
  checkpoint = tf.train.Checkpoint(sampler=a)
  a.position.assign(4)
  path = checkpoint.write(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(sampler=b).read(path).assert_consumed()
  resumed = [x["neg"].numpy() for x in b.dataset(64).take(2)]
  np.testing.assert_array_equal(resumed, first[4:6])


def test_a_user_owning_every_item_is_refused():
  import pytest  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="no negative"):
    sampler_lib.TripletSampler([0, 0], [0, 1], 1, 2)


def test_without_negatives_the_users_and_positives_are_the_same():
  users, items = [0, 0, 1, 2, 2, 2], [0, 1, 2, 0, 3, 4]
  full = sampler_lib.TripletSampler(users, items, 3, 6, seed=2)
  bare = sampler_lib.TripletSampler(users, items, 3, 6, seed=2, draw_negatives=False)
  for index in range(3):
    a = full.sample(tf.constant(index, tf.int64), 32)
    b = bare.sample(tf.constant(index, tf.int64), 32)
    assert "neg" in a and "neg" not in b
    for key in ("user", "pos", "batch"):
      np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
