"""Import this to have IPython and the cell's shell ready: the fork server preloads it.

A forkserver child then finds IPython imported and the shell built (in the
server, once), and only points the shell at its namespace. It finds the class
of the process object it unpickles (:class:`.handle.CellProcess`, by reference)
imported too: its modules cost a child 20 ms to import on a 2-CPU machine.
Never import it in a kernel: the shell it builds becomes the process's
``get_ipython()``.
"""

from __future__ import annotations

import ipywidgets  # noqa: F401 - what a cell's widgets and progress bars need, imported once

from . import handle  # noqa: F401 - what every cell's child unpickles first
from .shell import warm

warm()
