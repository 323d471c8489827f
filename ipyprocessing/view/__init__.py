"""How a ``%%process`` cell shows its child in the cell that started it.

- :mod:`.status_row`: the live status row (ipywidgets) in a kernel;
- :mod:`.text`: the same news as text lines, where no widget can render (terminal IPython);
- :mod:`.output`: the child's whole output log, and the bounded tail a cell shows;
- :mod:`.iopub`: display messages parented to the originating cell, from any thread;
- :mod:`.throttle`: coalescing, so that a flood of output cannot freeze the browser.
"""
