"""Shared by the fault tests: the uninterrupted reference runs that interrupted runs must match.

The references are started once per session, in the background, as soon as a test asks for
them (`references.start()`), so that they train while other commands run; `dvbpr()` and
`gan()` wait for them to finish.
"""

from __future__ import annotations

import pytest

from tests.faults import runs


@pytest.fixture(scope="session")
def references(tmp_path_factory, tiny_data_dir) -> runs.References:
  return runs.References(tmp_path_factory.mktemp("references"), tiny_data_dir)
