"""``%process_panel`` and ``%authkey``: the session panel and the auth key, from a line magic.

``register_panel_magics(ipython)`` registers both; ``load_ipython_extension``
calls it. It also starts the session at once, so that from
``%load_ext`` on no process of the session is missed, even one that exits
before a panel is ever shown.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import authkey_ui, session

__all__ = ["PanelMagics", "register_panel_magics"]


@magics_class
class PanelMagics(Magics):
    """The session panel and auth-key magics."""

    @magic_arguments()
    @argument("--text", action="store_true",
              help="Print the table once as text instead of showing the live widget.")
    @line_magic
    def process_panel(self, line: str) -> Any:
        """Show every process of the session in one live table, with the auth-key controls.

        The table lists processes started by %%process and by plain
        processing.Process(...).start() alike: name, pid, the fingerprint of
        its auth key, state, exit code, elapsed time, CPU % and memory, and a
        Terminate button per row; plus "Terminate all" and "Clear stopped".
        It updates by itself. Without a widget front end (a terminal) it
        prints the table as text.
        """
        args = parse_argstring(self.process_panel, line)
        if args.text or getattr(self.shell, "kernel", None) is None:
            print(session.current().table())
            return None
        from IPython.display import display

        from .panel import ProcessPanel

        display(ProcessPanel())
        return None

    @magic_arguments()
    @argument("--new", action="store_true",
              help="Regenerate: a fresh random key for processes started from now on "
                   "(running ones keep theirs).")
    @argument("--show", action="store_true",
              help="Print the full key. It then stays in the notebook's saved output: use with care.")
    @line_magic
    def authkey(self, line: str) -> None:
        """Print the fingerprint of the key processes started from now on will use.

        The key itself stays hidden (it authenticates the kernel with its
        children) unless --show is given; the fingerprint, the first 8 hex
        digits of its SHA-256, is what the process panel shows per process,
        so you can see which processes share a key.
        """
        args = parse_argstring(self.authkey, line)
        if args.new:
            print(authkey_ui.changed_note(authkey_ui.regenerate()))
        print(authkey_ui.describe(reveal=args.show))


def register_panel_magics(ipython: Any) -> None:
    """Register ``%process_panel`` and ``%authkey`` with ``ipython``; safe to call more than once."""
    session.current()
    ipython.register_magics(PanelMagics)
