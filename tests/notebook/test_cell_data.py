"""A cell's data and imports under spawn and forkserver (issue 13), in a real kernel.

- The fork server preloads the modules a cell sent by name, once a child imported them
  cleanly, so later children find them loaded; a module that failed in the child is never
  preloaded; the setting switches it off.
- The row says what was sent and how long it took; a shipment past the setting warns before
  the start, naming the biggest names.
"""

from __future__ import annotations

import pytest
from ipy_kernel import Kernel, is_reply_idle
from support import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

_PRELOAD = "__import__('processing.forkserver.client').forkserver.client.fork_server().preload"
#: A plain forkserver child that says whether numpy was in memory before it imported anything itself.
_NUMPY_IN_CHILD = (
    "import processing\n"
    "probe = processing.Process(target=lambda: processing.sendToParent('numpy' in __import__('sys').modules),"
    " method='forkserver')\n"
    "probe.start(); probe.join()\n"
    "found = probe.messages\n"
)


def _stderr(kernel: Kernel, msg_id: str) -> str:
    kernel.wait_for(lambda m: is_reply_idle(m, msg_id))
    return "".join(m["content"]["text"] for m in kernel.messages(msg_id, "stream")
                   if m["content"]["name"] == "stderr")


def test_a_module_sent_by_name_is_preloaded_after_a_clean_import(fresh_kernel: Kernel) -> None:
    kernel = fresh_kernel
    kernel.run(_NUMPY_IN_CHILD)
    assert kernel.eval("found") == [False]  # not there before any cell sent it
    kernel.run("import numpy as np")
    kernel.run("%%process --wait --method forkserver\nprint(np.zeros(3).sum())")
    assert wait_until(lambda: "numpy" in kernel.eval(_PRELOAD))
    kernel.run(_NUMPY_IN_CHILD)
    assert kernel.eval("found") == [True]  # the fork server has it: its children start with it


def test_the_class_a_cells_child_unpickles_is_preloaded(kernel: Kernel) -> None:
    """Every forkserver cell's child unpickles a CellProcess (by reference): the fork server has its
    module imported, so no child imports it again."""
    kernel.run("%%process --wait --method forkserver\nprint('warm')")
    kernel.run("import processing\n"
               "probe = processing.Process(target=lambda: processing.sendToParent("
               "'ipyprocessing.cell.handle' in __import__('sys').modules), method='forkserver')\n"
               "probe.start(); probe.join()\n"
               "found = probe.messages")
    assert kernel.eval("found") == [True]


def test_a_module_that_fails_in_the_child_is_not_preloaded(fresh_kernel: Kernel, tmp_path) -> None:
    kernel = fresh_kernel
    (tmp_path / "flaky_mod.py").write_text(
        "import os\nif not os.environ.get('FLAKY_OK'):\n    raise ImportError('flaky_mod needs FLAKY_OK')\n")
    kernel.run(f"import os, sys\nsys.path.insert(0, {str(tmp_path)!r})\nos.environ['FLAKY_OK'] = '1'\n"
               "import flaky_mod\ndel os.environ['FLAKY_OK']")
    kernel.execute("%%process --wait --method forkserver\nprint(flaky_mod)", fails=True)
    kernel.run("%%process --wait --method forkserver\nprint('unrelated')")
    assert "flaky_mod" not in kernel.eval(_PRELOAD)


def test_the_setting_switches_the_preload_off(fresh_kernel: Kernel) -> None:
    kernel = fresh_kernel
    kernel.run("%config ProcessSettings.preload_imports = False")
    kernel.run("import numpy as np")
    kernel.run("%%process --wait --method forkserver\nprint(np.zeros(3).sum())")
    assert "numpy" not in kernel.eval(_PRELOAD)


def test_the_row_says_what_was_sent_and_a_big_shipment_warns_first(kernel: Kernel) -> None:
    kernel.run("%config ProcessSettings.warn_send_bytes = 8 << 20")
    try:
        kernel.run("big = bytes(16 << 20)\nsmall = 1")
        msg_id = kernel.run("%%process --wait --method forkserver --name shipped\nprint(len(big), small)")
        warning = _stderr(kernel, msg_id)
        expected = ("warning: this cell sends 16.0 MB of the notebook's names to its child "
                    "(--method forkserver)")
        assert expected in warning
        assert "the biggest big (16.0 MB)" in warning and "--method fork" in warning
        record = kernel.messages(msg_id, "update_display_data")[-1]["content"]["data"]["text/plain"]
        assert "sent 16.0 MB in " in record and " ms" in record
        quiet = kernel.run("%%process --wait --method forkserver --name light\nprint(small)")
        assert "warning" not in _stderr(kernel, quiet)
        light = kernel.messages(quiet, "update_display_data")[-1]["content"]["data"]["text/plain"]
        assert "sent" not in light  # a few bytes are not worth a figure
    finally:
        kernel.run("%config ProcessSettings.warn_send_bytes = 256 << 20")


def test_a_dataframe_sent_out_of_band_is_equal_writable_and_the_notebooks_stays(kernel: Kernel) -> None:
    kernel.run("import numpy as np, pandas as pd\nframe = pd.DataFrame(np.ones((1 << 20, 4)))")  # 32 MiB
    kernel.run("%%process --wait --method forkserver --pull seen\n"
               "mapped = 'memfd:processing-buffers' in open('/proc/self/maps').read()\n"
               "seen = (float(frame.values.sum()), mapped)\n"
               "frame.iloc[0, 0] = 99.0  # the child's copy")
    assert kernel.eval("list(seen)") == [float(4 << 20), True]  # equal, and mapped from shared memory
    assert kernel.eval("float(frame.iloc[0, 0])") == 1.0  # the notebook's frame did not change


_PEAK_MIB = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss >> 10"


@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_pull_of_a_100_mib_array_comes_by_shared_memory(fresh_kernel: Kernel, method: str) -> None:
    kernel = fresh_kernel
    kernel.run("import mmap, numpy as np\n"
               "def mapped(a):\n"
               "    while getattr(a, 'base', None) is not None:\n"
               "        a = a.base\n"
               "    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)")
    before = kernel.eval(_PEAK_MIB)
    kernel.run(f"%%process --wait --method {method} --pull big\n"
               "import numpy as np\nbig = np.arange(100 << 17)")  # 100 MiB of int64
    grown = kernel.eval(_PEAK_MIB) - before  # before the notebook reads the array's pages
    # The array is a private mapping of the child's shared-memory file: never pickled, read and rebuilt.
    assert kernel.eval("mapped(big)") is True
    assert grown < 20, f"the kernel's peak grew {grown} MiB pulling 100 MiB"
    assert kernel.eval("[int(big.sum()), big.nbytes, big.flags.writeable]") == [
        sum(range(100 << 17)), 100 << 20, True]
    kernel.run("del big")
