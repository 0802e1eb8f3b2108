"""The peer cross-check: runs on the tiny catalog when Cornac and LightFM are installed
(`pip install -e '.[peers]'`), and says what to install when they are not."""

import numpy as np
import pytest

from benchmarks import peers_bench


def test_pca_features_are_centred_projections(tiny_catalog):
  features = peers_bench.pca_features(tiny_catalog, 8, 16)
  assert features.shape == (tiny_catalog.num_items, 8)
  np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-4)
  variances = features.var(axis=0)
  assert np.all(np.diff(variances) <= 1e-6)  # Components in decreasing variance.


def test_without_the_peers_one_line_says_what_to_install(monkeypatch, tiny_catalog, tmp_path):
  monkeypatch.setattr(peers_bench, "peers_available", lambda: False)
  with pytest.raises(RuntimeError, match=r"pip install -e '\.\[peers\]'"):
    peers_bench.run(tiny_catalog, peers_bench.SIZES["tiny"], tmp_path)


def test_side_by_side_on_the_tiny_catalog(tiny_catalog, tmp_path):
  pytest.importorskip("cornac")
  pytest.importorskip("lightfm")
  document = peers_bench.run(tiny_catalog, peers_bench.SIZES["tiny"], tmp_path)
  assert [(r["ours"], r["peer"]) for r in document["rows"]] == list(peers_bench.PAIRS)
  for row in document["rows"]:
    for side in ("ours_record", "peer_record"):
      for key in peers_bench.SHOWN:
        assert 0.0 <= row[side][key] <= 1.0, (row["peer"], side, key)
  assert "| bpr_mf (" in peers_bench.markdown(document)


def test_the_command_says_what_to_install_without_the_peers(tmp_path):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  from tests.conftest import REPO  # pylint: disable=g-import-not-at-top
  if peers_bench.peers_available():
    pytest.skip("the peers are installed here")
  done = subprocess.run([sys.executable, "-m", "benchmarks.peers_bench",
                         f"--data_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode != 0
  assert "pip install -e '.[peers]'" in done.stderr and "Traceback" not in done.stderr
