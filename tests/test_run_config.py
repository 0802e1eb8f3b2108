"""A work dir's recorded configuration against the one a command asks for (resume checks)."""

import json

import pytest

from dvbpr_tf import config as config_lib
from dvbpr_tf.core import errors
from dvbpr_tf.core import workdir as workdir_lib
from experiments import common


def _write(tmp_path, gan_section: dict) -> workdir_lib.Workdir:
  work = workdir_lib.Workdir(tmp_path / "run").make()
  work.config_path.write_text(json.dumps({"gan": gan_section, "run": {"seed": 0}}))
  return work


def _asked(gan: config_lib.GanTrainConfig) -> dict:
  return {"gan": config_lib.as_dict(gan), "run": {"seed": 0}}


def test_a_run_written_before_a_field_existed_resumes_when_the_field_keeps_its_default(
    tmp_path):
  gan = config_lib.preset("demo").gan
  older = config_lib.as_dict(gan)
  del older["network"]["minibatch_stddev_group"]  # As the previous version wrote it.
  del older["mismatched_labels"]
  work = _write(tmp_path, older)
  common.check_same_run(work, _asked(gan))  # Resumes.
  grouped = config_lib.override(config_lib.preset("demo"),
                                {"gan.network.minibatch_stddev_group": 4}).gan
  with pytest.raises(errors.UserError, match=r"another configuration \(differs in: gan\)"):
    common.check_same_run(work, _asked(grouped))


def test_a_recorded_section_this_version_cannot_read_differs(tmp_path):
  gan = config_lib.preset("demo").gan
  newer = {**config_lib.as_dict(gan), "a_field_of_a_later_version": 1}
  work = _write(tmp_path, newer)
  with pytest.raises(errors.UserError, match=r"differs in: gan"):
    common.check_same_run(work, _asked(gan))
  work = _write(tmp_path, {**config_lib.as_dict(gan), "batch_size": -3})  # Invalid value.
  with pytest.raises(errors.UserError, match=r"differs in: gan"):
    common.check_same_run(work, _asked(gan))
