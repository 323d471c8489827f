"""Exit codes as Python 3's multiprocessing gives them, under each start method."""

from __future__ import annotations

import signal

import proc_targets
import pytest
from support import Output

import processing

pytestmark = pytest.mark.timeout(60)


def run_captured(method: str, target, *args: object) -> tuple[processing.Process, Output]:
    output = Output()
    p = processing.Process(target=target, args=args, method=method, output=output)
    p.start()
    p.join()
    return p, output


def test_normal_return_is_zero(method: str) -> None:
    p, output = run_captured(method, proc_targets.noop)
    assert p.exitcode == p.getExitCode() == 0
    assert output.data("stderr") == b""


@pytest.mark.parametrize("args", [(), (None,), (0,)], ids=["sys.exit()", "sys.exit(None)", "sys.exit(0)"])
def test_sys_exit_without_code_is_zero(method: str, args: tuple[object, ...]) -> None:
    p, output = run_captured(method, proc_targets.call_sys_exit, *args)
    assert p.exitcode == 0
    assert output.data("stderr") == b""


@pytest.mark.parametrize("code", [1, 2, 3, 42, 255])
def test_sys_exit_with_a_number(method: str, code: int) -> None:
    p, output = run_captured(method, proc_targets.call_sys_exit, code)
    assert p.exitcode == code
    assert repr(p) == f"<Process({p.name}, stopped[{code}])>"
    assert output.data("stderr") == b""


def test_os_exit(method: str) -> None:
    p, output = run_captured(method, proc_targets.hard_exit, 5)
    assert p.exitcode == 5
    assert output.data("stderr") == b""


def test_sys_exit_with_a_message(method: str) -> None:
    p, output = run_captured(method, proc_targets.call_sys_exit, "the message for sys.exit")
    assert p.exitcode == 1
    assert output.text("stderr") == "the message for sys.exit\n"
    assert repr(p) == f"<Process({p.name}, stopped[1])>"


def test_exception_in_run(method: str) -> None:
    p, output = run_captured(method, proc_targets.raise_value_error, "something went wrong")
    assert p.exitcode == 1
    err = output.text("stderr")
    assert err.startswith(f"Process {p.name}:\n"), err
    assert "Traceback (most recent call last):" in err
    assert "raise_value_error" in err
    assert err.rstrip().endswith("ValueError: something went wrong")
    assert output.data("stdout") == b""


def test_exception_in_a_subclass_run(method: str) -> None:
    class Failing(proc_targets.Recorder):
        def run(self) -> None:
            raise KeyError("missing")

    p = Failing(method=method, output=(output := Output()))
    p.start()
    p.join()
    assert p.exitcode == 1
    err = output.text("stderr")
    assert err.startswith(f"Process {p.name}:\n")
    assert "KeyError: 'missing'" in err


def test_keyboard_interrupt_in_run_is_an_error_exit(method: str) -> None:
    p, output = run_captured(method, proc_targets.raise_keyboard_interrupt)
    assert p.exitcode == 1
    assert f"Process {p.name}:" in output.text("stderr")
    assert "KeyboardInterrupt" in output.text("stderr")


def test_terminate_gives_minus_sigterm(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM


def test_kill_gives_minus_sigkill(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert repr(p) == f"<Process({p.name}, stopped[SIGKILL])>"


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGABRT, signal.SIGUSR1])
def test_death_by_its_own_signal(method: str, signum: int) -> None:
    p = processing.Process(target=proc_targets.die_by_signal, args=(signum,), method=method)
    p.start()
    p.join()
    assert p.exitcode == -signum
    assert repr(p) == f"<Process({p.name}, stopped[{signal.Signals(signum).name}])>"


def test_exit_code_is_known_without_join(method: str) -> None:
    from multiprocessing.connection import wait

    p = processing.Process(target=proc_targets.call_sys_exit, args=(5,), method=method)
    p.start()
    assert wait([p.sentinel], timeout=30)
    assert p.getExitCode() == 5
    assert not p.isAlive()
    p.join()
