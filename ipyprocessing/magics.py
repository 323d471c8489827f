"""The magics: ``%%process``, ``%processes`` and ``%process_terminate``.

``%%process`` does everything that can fail before it starts anything: it
parses the options (``magic_arguments``, so ``%%process?`` is real help and a
bad option is a ``UsageError``), compiles the cell as IPython would (its
``!cmd`` and ``%magic`` lines transformed; a ``SyntaxError`` is shown at once,
as a plain cell's is, and nothing starts), and under spawn and forkserver packs
the names the cell uses (an unsendable one is named). Only then does it start
the child, show it, and return, unless ``--wait`` was given.
"""

from __future__ import annotations
import __future__

import ast
import keyword
import math
import pickle
import re
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import processing

from .cell.handle import CellHandle, CellProcess
from .cell.namespace import NamespaceError, biggest, cell_sources, globals_used, names_in_magics, ship
from .cell.target import CellTarget, ShellSettings
from .cell.waiting import wait_for
from .session import Session
from .view.throttle import Throttle
from .words import format_bytes, pid_text, state_word

if TYPE_CHECKING:
    from .view.status_row import WidgetView
    from .view.text import TextView

__all__ = ["ProcessMagics"]

_CLUSTER_DAEMON = (
    "--daemon cannot be combined with --cluster or --cluster-client: a remote cell's child is always "
    "daemonic on its worker (the worker stops it when it exits) and the notebook stops it when the kernel "
    "exits, so the flag would change nothing; drop --daemon"
)
_INTERRUPT_REASON = "terminated: the kernel was interrupted while the cell waited (--wait)"
_REPLACED = "terminated: its cell was run again with --replace"
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
#: The modules the child's IPython shell needs, which the fork server keeps imported (and the shell built).
CHILD_PRELOAD = "ipyprocessing.cell.warm"


@magics_class
class ProcessMagics(Magics):
    """Magics that run cells in child processes and control them."""

    def __init__(self, shell: Any, session: Session) -> None:
        super().__init__(shell)
        self.session = session
        # One output thread for all the session's status rows (started on first use).
        self._throttle = Throttle()

    @magic_arguments("%process")  # IPython adds one "%": the usage line reads %%process
    @argument("--name", help="Name of the process (default: the core's Process-N).")
    @argument("--daemon", action="store_true", default=None,
              help="Set the process's daemon flag, as processing.Process(daemon=True) does (local cells "
                   "only: a remote cell's child is always daemonic on its worker).")
    @argument("--method", choices=("fork", "spawn", "forkserver"),
              help="Start method (default: processing.getStartMethod(), normally forkserver).")
    @argument("--wait", action="store_true",
              help="Block until the child exits; the Terminate button still works, and "
                   "interrupting the kernel terminates the child.")
    @argument("--replace", action="store_true",
              help="If this cell's previous child still runs, terminate it first (else it runs on, "
                   "shown on one line with its own Terminate button).")
    @argument("--timeout", type=float, metavar="SECONDS",
              help="Terminate the child if it still runs after SECONDS seconds.")
    @argument("--push", action="append", default=[], metavar="NAMES",
              help="Comma-separated notebook names to send besides those the cell visibly uses "
                   "(e.g. names used only through eval). Spawn and forkserver only.")
    @argument("--pull", action="append", default=[], metavar="NAMES",
              help="Comma-separated names the cell defines, assigned in the notebook when the "
                   "child exits with code 0.")
    @argument("--proc", metavar="VAR", help="Bind the Process object to VAR in the notebook.")
    @argument("--cluster", metavar="ADDRESS",
              help="Run the cell in a child process on a Dask worker of the scheduler at ADDRESS "
                   "(e.g. tcp://10.0.0.5:8786); the notebook's names are sent by value. --wait, "
                   "--timeout, --pull, --push and --proc work as for a local cell.")
    @argument("--cluster-client", metavar="VAR",
              help="Like --cluster, with the distributed.Client bound to VAR in the notebook.")
    @cell_magic
    def process(self, line: str, cell: str) -> None:
        """Run the cell in a child process and return at once; watch and control it live.

        The child runs the cell as a notebook cell: in an IPython shell of its
        own, so ``!cmd``, ``%line`` and ``%%cell`` magics, ``?`` and top-level
        ``await`` work; what it displays (HTML, plots, DataFrames, the last
        expression's value, widgets such as tqdm bars, tracebacks as IPython
        shows them) appears in this cell, below a status row with the
        process's name, pid, state, exit code, elapsed time, CPU, memory and a
        Terminate button, as it happens, even while other cells run. ``input()``
        asks in the notebook under ``--wait``, and fails at once without it.

        Under fork the child sees the notebook's globals; under spawn and
        forkserver the globals the cell uses are sent by value (modules are
        imported again). When the child has ended, the cell keeps a record of
        how it ended and the child's outputs as its own.
        """
        args = parse_argstring(self.process, line)
        pull, push = _names(args.pull, "--pull"), _names(args.push, "--push")
        _check_options(args)
        method = args.method or processing.getStartMethod()
        compiled = self._compile(cell)
        if compiled is None:
            return  # a syntax error, shown as a plain cell's: nothing starts
        code, transformed = compiled
        began = time.perf_counter()  # the shipment's packing and sending, for the row's "sent" figure
        cluster = self._cluster(args)
        if cluster is not None:
            from .cell.remote import RemoteCellProcess

            # The worker's child never shares this interpreter's memory: send the names by value.
            target = self._target(code, transformed, cell, "spawn", pull, push, args.wait)
            process: CellHandle = RemoteCellProcess(target, user_ns=self.shell.user_ns, cluster=cluster,
                                                    name=args.name, method=args.method)
        else:
            target = self._target(code, transformed, cell, method, pull, push, args.wait)
            process = CellProcess(target, user_ns=self.shell.user_ns, name=args.name, daemon=args.daemon,
                                  method=method)
        self._warn_if_big(target, method, code, push)
        process.cell_id = self._cell_id()
        previous = self._previous_runs(process.cell_id)
        if args.replace:
            self._replace(previous)
            previous = []
        view = self._view(process, args.proc)
        process.attach(view)
        try:
            process.start()
        except ConnectionError as error:  # SchedulerUnreachableError: it names the address
            raise UsageError(f"%%process --cluster: {error}") from None
        if target.shipment is not None:
            process.sent = (target.shipment.size, time.perf_counter() - began)
        if args.proc:
            self.shell.user_ns[args.proc] = process
        if not args.wait:
            view.show()
            self._show_previous(previous)
            if args.timeout is not None:
                process.stop_after(args.timeout)
            return
        try:
            view.show()
            self._show_previous(previous)
            wait_for(process, getattr(self.shell, "kernel", None), args.timeout)
        except KeyboardInterrupt:
            # The user stopped the cell: its child goes too, and the cell shows the interrupt.
            process.stop(_INTERRUPT_REASON)
            process.join()
            raise

    @line_magic
    def processes(self, line: str) -> None:
        """Print a table of the processes this session started with %%process."""
        if self.session.entries(cells=True):
            print(self.session.table(cells=True))
        else:
            print("no %%process has been started in this session")

    @magic_arguments()
    @argument("target", nargs="?", help="Name or pid of the process(es) to terminate.")
    @argument("--all", action="store_true", help="Terminate every running process of this session.")
    @line_magic
    def process_terminate(self, line: str) -> None:
        """Terminate %%process children by name or pid (SIGTERM, then SIGKILL if still alive after 2 s)."""
        args = parse_argstring(self.process_terminate, line)
        if bool(args.all) == bool(args.target):
            raise UsageError("give the name or pid of a process, or --all (not both); %processes lists them")
        reason = "terminated by %process_terminate"
        if args.all:
            running = self.session.stop_all(reason)
        else:
            processes = self.session.find(args.target)
            if not processes:
                raise UsageError(f"no process named {args.target!r} or with pid {args.target} in this "
                                 "session; %processes lists them")
            running = [process for process in processes if process.is_alive()]
            for process in running:
                process.stop(reason)
        for process in running:
            process.join()
            print(f"terminated {process.name} (pid {pid_text(process)}): "
                  f"{state_word(process, process.exitcode, True)}")
        if not running:
            print("nothing to terminate: no such process is running")

    def _cluster(self, args: Any) -> Any:
        """The cluster for --cluster/--cluster-client (an address or a Client), or None for a local child."""
        if args.cluster is None and args.cluster_client is None:
            return None
        if args.cluster is not None and args.cluster_client is not None:
            raise UsageError("give --cluster ADDRESS or --cluster-client VAR, not both")
        if args.daemon:
            raise UsageError(_CLUSTER_DAEMON)
        if args.cluster is not None:
            return args.cluster
        if args.cluster_client not in self.shell.user_ns:
            raise UsageError(f"--cluster-client {args.cluster_client!r}: not defined in the notebook")
        return self.shell.user_ns[args.cluster_client]

    def _compile(self, cell: str) -> tuple[Any, str] | None:
        """The cell's code as IPython would compile it, and its transformed source; or None after
        showing its SyntaxError.

        The error is shown as a plain cell's (``Cell In[N], line L``, no frames of
        the magic's), and the cell counts as failed, so that Run All stops there.
        """
        shell = self.shell
        transformed = shell.transform_cell(cell)
        filename = shell.compile.cache(transformed, self._cell_number(), raw_code=cell)
        flags = (shell.compile.flags & _FUTURE_FLAGS) | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            return compile(transformed, filename, "exec", flags=flags, dont_inherit=True), transformed
        except SyntaxError as error:
            shell.showsyntaxerror()
            result = shell.displayhook.exec_result  # this cell's, while it runs
            if result is not None:
                result.error_in_exec = error
            return None

    def _target(self, code: Any, transformed: str, cell: str, method: str, pull: tuple[str, ...],
                push: tuple[str, ...], wait: bool) -> CellTarget:
        shell = self.shell
        if method == "fork":
            missing = [name for name in push if name not in shell.user_ns]
            if missing:
                raise UsageError(f"--push {', '.join(map(repr, missing))}: not defined in the notebook")
            # A forked child has the notebook's memory: all the cells' sources, as they are.
            settings = self._settings(cell_sources(shell, None), wait, share_config=True)
            return CellTarget(cell, settings, pull, namespace=shell.user_ns)
        try:
            shipment, files = ship(shell.user_ns, globals_used(code), push, hidden=shell.user_ns_hidden,
                                   method=method, optional=names_in_magics(transformed))
        except NamespaceError as error:
            raise UsageError(str(error)) from None
        settings = self._settings(cell_sources(shell, files), wait, share_config=False)
        return CellTarget(cell, settings, pull, shipment=shipment)

    def _settings(self, sources: dict[str, tuple[list[str], int]], wait: bool, *,
                  share_config: bool) -> ShellSettings:
        """How the child's shell shows the cell as this notebook's (see :class:`ShellSettings`)."""
        shell = self.shell
        config = shell.config if share_config else _sendable_config(shell.config)
        return ShellSettings(self._cell_number(), config, getattr(shell, "colors", None), sources, wait)

    def _warn_if_big(self, target: CellTarget, method: str, code: Any, push: tuple[str, ...]) -> None:
        """Before the start: a shipment past ``warn_send_bytes`` is named, with what to do instead."""
        from .settings import current

        limit = current().warn_send_bytes
        if target.shipment is None or not limit or target.shipment.size <= limit:
            return
        heavy = biggest(self.shell.user_ns, [*globals_used(code), *push])
        names = ", ".join(f"{name} ({format_bytes(size)})" for name, size in heavy)
        print(f"warning: this cell sends {format_bytes(target.shipment.size)} of the notebook's names "
              f"to its child (--method {method}), the biggest {names}. It is copied for every start: "
              "use --method fork (which sends nothing), or load the data inside the cell "
              "(c.ProcessSettings.warn_send_bytes sets when this warning shows)", file=sys.stderr)

    def _cell_id(self) -> str | None:
        """The front end's id of the cell running this magic (JupyterLab, Notebook 7, VS Code send one)."""
        result = getattr(self.shell.displayhook, "exec_result", None)
        return getattr(getattr(result, "info", None), "cell_id", None)

    def _previous_runs(self, cell_id: str | None) -> list[CellHandle]:
        """The children of earlier runs of this same cell that still run."""
        if cell_id is None:
            return []
        return [entry.process for entry in self.session.live()  # type: ignore[misc]
                if entry.is_cell and getattr(entry.process, "cell_id", None) == cell_id]

    def _replace(self, previous: list[CellHandle]) -> None:
        """``--replace``: the earlier runs' children go first (SIGTERM, then SIGKILL), in parallel."""
        self.session.stop_now(previous, _REPLACED)
        for process in previous:
            print(f"terminated the previous run {process.name} (pid {pid_text(process)}): "
                  f"{state_word(process, process.exitcode, True)}")

    def _show_previous(self, previous: list[CellHandle]) -> None:
        """Keep an earlier run's child that still runs in sight, with its Terminate button."""
        from .view.line import describe, show_line

        for process in previous:
            line = show_line(process, f"previous run still running: {describe(process)}", self.session,
                             reason="terminated from its previous-run line")
            line.end_when_stopped(lambda process=process: (
                f"previous run ended: {process.name} (pid {pid_text(process)}): "
                f"{state_word(process, process.exitcode, True)}"))

    def _cell_number(self) -> int:
        """The number of the cell running this magic, its ``In[N]`` (IPython may have counted on already)."""
        result = getattr(self.shell.displayhook, "exec_result", None)
        number = getattr(result, "execution_count", None)
        return self.shell.execution_count if number is None else number

    def _view(self, process: Any, proc: str | None) -> TextView | WidgetView:
        """A widget view in a kernel, text lines elsewhere (widgets are imported only when needed)."""
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None:
            from .view.text import TextView

            return TextView(process)
        from .view.iopub import CellChannel
        from .view.status_row import WidgetView

        where = f"{proc}.output" if proc else "the process's .output (--proc VAR binds it to VAR)"
        return WidgetView(process, CellChannel(kernel), self._throttle, self.session,
                          hint=f"; all output is in {where}")


def _sendable_config(config: Any) -> dict[str, Any] | None:
    """The shell's configuration as a child can receive it, or None if some of it cannot be pickled."""
    try:
        return pickle.loads(pickle.dumps(config))
    except Exception:
        return None


def _names(values: list[str], option: str) -> tuple[str, ...]:
    names = tuple(name for value in values for name in re.split(r"[,\s]+", value) if name)
    bad = [name for name in names if not name.isidentifier() or keyword.iskeyword(name)]
    if bad:
        raise UsageError(f"{option}: {', '.join(map(repr, bad))} is not a Python name; "
                         f"write {option} a,b with the names separated by commas")
    return names


#: The shortest --timeout: below it the child would be stopped before it could start.
_SHORTEST_TIMEOUT = 0.01


def _check_options(args: Any) -> None:
    timeout = args.timeout
    if timeout is not None and not (math.isfinite(timeout) and timeout >= _SHORTEST_TIMEOUT):
        raise UsageError(f"--timeout must be a finite number of seconds, at least {_SHORTEST_TIMEOUT:g}, "
                         f"not {timeout:g}; leave --timeout out to let the child run as long as it needs")
    if args.proc is not None and (not args.proc.isidentifier() or keyword.iskeyword(args.proc)):
        raise UsageError(f"--proc: {args.proc!r} is not a Python name")
