"""The extension's settings are configurable traitlets: from IPython's config, and live with %config."""

from __future__ import annotations

import json

import pytest
from support import run_python

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import json
from traitlets.config import Config
from IPython.core.interactiveshell import InteractiveShell

config = Config()
config.ProcessSettings.tail_lines = 3
config.ProcessSettings.refresh_period = 0.25
shell = InteractiveShell.instance(config=config)
shell.run_line_magic("load_ext", "ipyprocessing")
from ipyprocessing import settings
from ipyprocessing.cell.handle import CellProcess
from ipyprocessing.cell.target import CellTarget, ShellSettings
from ipyprocessing.view.output import Tail

loaded = settings.current()
shell.run_line_magic("config", "ProcessSettings.max_stopped = 7")
shell.run_line_magic("config", "ProcessSettings.refresh_period = -1")  # traitlets logs why, and keeps it
refused = loaded.refresh_period == 0.25
shell.run_line_magic("config", "ProcessSettings.spill_bytes = 10")
cell = CellProcess(CellTarget("", ShellSettings(1, None, None, {}, False), namespace={}), user_ns={},
                   method="fork")
tail = Tail(loaded.tail_lines)
tail.feed([("stdout", b"".join(b"line %d\\n" % i for i in range(10)))])
print(json.dumps({
    "tail_lines": loaded.tail_lines,
    "refresh_period": loaded.refresh_period,
    "max_stopped": loaded.max_stopped,
    "refused": refused,
    "spilled_at": cell._log._spill,
    "shown": tail.render(),
    "known_to_config": any(type(c).__name__ == "ProcessSettings" for c in shell.configurables),
}))
"""


def test_settings_come_from_the_config_and_change_with_percent_config() -> None:
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["tail_lines"] == 3 and seen["refresh_period"] == 0.25  # from the config
    assert seen["max_stopped"] == 7 and seen["spilled_at"] == 10  # from %config, in force at once
    assert seen["refused"], "a negative refresh period is refused"
    assert "refresh_period must be a positive number of seconds, not -1" in result.stderr
    assert seen["shown"].splitlines() == ["[7 earlier lines not shown]", "line 7", "line 8", "line 9"]
    assert seen["known_to_config"]
