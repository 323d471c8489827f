"""Objects from a parent to its child: ``Process.sendToChild`` and ``processing.receiveFromParent``."""

from __future__ import annotations

import proc_targets
import pytest
from support import wait_until

import processing
from processing import frames

pytestmark = pytest.mark.timeout(60)


class Point:  # defined here, in a test module the child can import again
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


def test_objects_sent_to_the_child_arrive_in_order_and_come_back(method: str) -> None:
    p = processing.Process(target=proc_targets.echo_from_parent, method=method)
    p.start()
    sent = [1, "two", {"three": [3]}, Point(4), b"\0" * 100_000]
    for obj in sent:
        p.sendToChild(obj)
    p.send_to_child("stop")
    p.join(30)
    assert p.exitcode == 0
    assert p.messages == [("echo", obj) for obj in sent]


def test_sending_needs_a_running_child(method: str) -> None:
    p = processing.Process(target=proc_targets.noop, method=method)
    with pytest.raises(processing.ProcessStateError, match="has not been started"):
        p.sendToChild("early")
    p.start()
    p.join(30)
    with pytest.raises(processing.ProcessStateError, match="it has exited"):
        p.sendToChild("late")


def test_receiving_outside_a_child_says_so() -> None:
    with pytest.raises(processing.ProcessStateError, match="only inside a child started by processing"):
        processing.receiveFromParent(timeout=0)


def test_a_timeout_and_a_forged_frame_are_reported_in_the_child(method: str) -> None:
    p = processing.Process(target=proc_targets.report_receive_errors, method=method)
    p.start()
    assert wait_until(lambda: p.messages[:1] == [("ready", ["TimeoutError"])])
    # A frame signed with the wrong key, written where the parent's frames go:
    forged = frames.Signer(b"not the key", p._popen.channel.challenge + b"\0down").seal(b"\x80\x05N.")
    p._popen.channel.sock.sendall(forged)
    p.join(30)
    assert p.exitcode == 0
    assert p.messages[-1] == ("done", ["TimeoutError", "AuthenticationError"])
