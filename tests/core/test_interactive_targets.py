"""Targets defined interactively work under every start method.

A function defined in ``__main__`` with no file behind it (``python -c``, a
notebook cell), a lambda, a closure, a Process subclass defined in ``__main__``
and arguments whose class lives in ``__main__``. The ``__main__`` cases run in a
fresh ``python -c`` interpreter, as a notebook kernel would have them.
"""

from __future__ import annotations

import json
import threading

import proc_targets
import pytest
from support import METHODS, run_python

import processing

pytestmark = pytest.mark.timeout(60)

MAIN_SCRIPT = """
import json, sys
import processing

method = sys.argv[1]
results = {}

def f(x, y=1):
    processing.sendToParent(("f", x * y))

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm2(self):
        return self.x ** 2 + self.y ** 2

def use_point(point):
    processing.sendToParent(("point", type(point).__name__, point.norm2(), Point(1, 1).norm2()))

class Worker(processing.Process):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
    def run(self):
        processing.sendToParent(("Worker.run", type(self).__name__, self.factor * 2))

def make_closure(base):
    offset = base * 10
    def closure(n):
        processing.sendToParent(("closure", base + offset + n))
    return closure

def returns_main_object():
    processing.sendToParent(Point(3, 4))

cases = {
    "function": processing.Process(target=f, args=(6,), kwargs={"y": 7}, method=method),
    "lambda": processing.Process(target=lambda a: processing.sendToParent(("lambda", a + 1)), args=(41,),
                                 method=method),
    "closure": processing.Process(target=make_closure(2), args=(3,), method=method),
    "subclass": Worker(21, method=method),
    "main-class-argument": processing.Process(target=use_point, args=(Point(3, 4),), method=method),
    "main-object-sent-back": processing.Process(target=returns_main_object, method=method),
}
for p in cases.values():
    p.start()
for name, p in cases.items():
    p.join()
    message = p.messages[0] if p.messages else None
    if type(message).__name__ == "Point":
        message = ["Point", message.norm2(), isinstance(message, Point)]
    results[name] = {"exitcode": p.exitcode, "message": message, "repr": repr(p)}
print(json.dumps(results))
"""

EXPECTED = {
    "function": ["f", 42],
    "lambda": ["lambda", 42],
    "closure": ["closure", 25],
    "subclass": ["Worker.run", "Worker", 42],
    "main-class-argument": ["point", "Point", 25, 2],
    "main-object-sent-back": ["Point", 25, True],  # an instance of this very class
}


@pytest.mark.parametrize("method", METHODS)
def test_main_module_targets_with_no_file(method: str) -> None:
    result = run_python(MAIN_SCRIPT, method)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    results = json.loads(result.stdout)
    for name, expected in EXPECTED.items():
        assert results[name]["exitcode"] == 0, (name, results[name])
        assert results[name]["message"] == expected, name
    assert results["subclass"]["repr"].startswith("<Worker(Process-")


IDENTITY_SCRIPT = """
import sys
import processing

class Point:
    def __init__(self, x):
        self.x = x

def send_point():
    processing.sendToParent(Point(1))

p = processing.Process(target=send_point, method=sys.argv[1])
p.start()
p.join()
[point] = p.messages
print(type(point).__name__, point.x, type(point) is Point, isinstance(point, Point))
"""


@pytest.mark.parametrize("method", METHODS)
def test_objects_of_main_classes_sent_back_are_instances_of_the_parents_class(method: str) -> None:
    result = run_python(IDENTITY_SCRIPT, method)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Point", "1", "True", "True"]


STDLIB_SCRIPT = """
import multiprocessing, sys

def f():
    pass

ctx = multiprocessing.get_context(sys.argv[1])
p = ctx.Process(target=f)
p.start()
p.join()
print(p.exitcode)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_for_comparison_stdlib_multiprocessing_fails_on_the_same_script(method: str) -> None:
    """Documents the problem processing solves: stdlib children cannot find ``__main__.f``."""
    result = run_python(STDLIB_SCRIPT, method)
    assert "AttributeError: Can't get attribute 'f' on <module '__main__'" in result.stderr
    assert result.stdout.strip() == "1"


# -- the same kinds of targets, from a test module (not __main__) ------------------------------


def test_lambda(method: str) -> None:
    p = processing.Process(target=lambda a, b: processing.sendToParent(a * b), args=(6, 7), method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [42]


def test_closure_over_a_local_variable(method: str) -> None:
    secret_number = 1234
    words = ["closures", "work"]

    def target(suffix: str) -> None:
        processing.sendToParent((secret_number, " ".join(words) + suffix))

    p = processing.Process(target=target, args=("!",), method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [(1234, "closures work!")]


def test_local_subclass(method: str) -> None:
    class Local(processing.Process):
        def __init__(self, n: int, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.n = n

        def run(self) -> None:
            processing.sendToParent((type(self).__name__, self.n + 1))

    p = Local(41, method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [("Local", 42)]


def test_argument_of_a_locally_defined_class(method: str) -> None:
    class Box:
        def __init__(self, value: object) -> None:
            self.value = value

    p = processing.Process(target=lambda box: processing.sendToParent(box.value), args=(Box([1, 2]),),
                           method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [[1, 2]]


def test_importable_targets_and_arguments_travel_by_reference(method: str) -> None:
    """The fast path: importable objects are pickled by reference and are the same classes in the child."""
    from processing import serialization

    data = serialization.dumps(proc_targets.Payload(1))
    assert b"proc_targets" in data and b"cloudpickle" not in data
    p = processing.Process(target=proc_targets.echo, args=(proc_targets.Payload("x"),), method=method)
    p.start()
    p.join()
    assert p.messages == [((proc_targets.Payload("x"),), {})]


def test_state_of_a_lambda_target_is_captured_at_start(method: str) -> None:
    counter = {"value": 1}
    p = processing.Process(target=lambda: processing.sendToParent(counter["value"]), method=method)
    counter["value"] = 2  # changed after construction, before start
    p.start()
    counter["value"] = 3  # changed after start: the child has its own copy
    p.join()
    assert p.messages == [2]


def test_target_raising_in_a_lambda_reports_the_traceback(method: str, output) -> None:
    p = processing.Process(target=lambda: 1 / 0, method=method, output=output)
    p.start()
    p.join()
    assert p.exitcode == 1
    assert "ZeroDivisionError" in output.text("stderr")


def test_unpicklable_closure_names_the_target(method: str) -> None:
    lock = threading.Lock()
    p = processing.Process(target=lambda: lock.acquire(), method=method)
    if method == "fork":
        p.start()
        p.join()
        assert p.exitcode == 0
    else:
        with pytest.raises(processing.TargetPicklingError, match="target"):
            p.start()
        assert p.pid is None
