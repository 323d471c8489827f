"""The seed page's example passes verbatim as a doctest, in a fresh interpreter, under each start method."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from support import METHODS, run_python

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_DOCTEST = os.path.join(HERE, "seed_example.doctest")


@pytest.mark.timeout(60)
def test_seed_example_with_python_m_doctest() -> None:
    """Exactly as ``python -m doctest -v`` runs it, with the default start method."""
    result = subprocess.run(
        [sys.executable, "-m", "doctest", "-v", SEED_DOCTEST], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # "8 passed and 0 failed." up to Python 3.12, "8 passed." from 3.13 on.
    assert re.search(r"^8 passed(?: and 0 failed)?\.$", result.stdout, re.MULTILINE), result.stdout
    assert "Test passed." in result.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_seed_example_under_each_start_method(method: str) -> None:
    result = run_python(
        """
        import doctest, sys
        import processing
        processing.setStartMethod(sys.argv[1])
        failed, attempted = doctest.testfile(sys.argv[2], module_relative=False, verbose=False)
        print(f"{attempted} attempted, {failed} failed")
        sys.exit(1 if failed or attempted != 8 else 0)
        """,
        method,
        SEED_DOCTEST,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("8 attempted, 0 failed")
    assert result.stderr == ""
