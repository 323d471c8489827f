"""The core library's tests: ``processing`` alone, with nothing but the ``test-core`` extra installed.

Nothing here imports IPython, ipywidgets, Jupyter or Dask: ``.ci/other-pythons`` runs this
directory under every other supported Python, and ``.ci/wheel`` against the installed wheel.
"""

from __future__ import annotations

import pytest
from support import METHODS


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    """Each start method in turn."""
    return request.param
