"""A ``%%process`` cell: what its child runs, the notebook's handle on it, and what travels between them.

- :mod:`.target`: what the child runs (imported in every spawn and forkserver child: nothing heavy);
- :mod:`.namespace`: which notebook names a cell needs in a fresh interpreter, packed to send;
- :mod:`.handle`: :class:`CellProcess`, the notebook's handle (output log, ``--pull``, stop reasons);
- :mod:`.remote`: the same handle over a Dask worker's child (``--cluster``);
- :mod:`.waiting`: ``--wait``, which keeps the cell's widgets alive while it blocks.
- :mod:`.pulls`: pulled names, assigned between cells; a cell that reads one waits for it;
- :mod:`.clock`: whether a cell executes now, and what must be sent again as the next one starts.
"""
