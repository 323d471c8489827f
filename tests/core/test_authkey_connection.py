"""Auth keys: creation, inheritance, validation, secrecy; their use by the control channel and connections."""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from multiprocessing import connection as stdlib_connection

import proc_targets
import pytest
from support import monitor_settled, run_python

import processing
from processing import AuthenticationError
from processing.channel import ChildChannel, ParentChannel

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cret-" + "9" * 40  # recognisable in any text it might leak into


def main_key() -> str:
    return processing.currentProcess().getAuthKey()


# -- keys ------------------------------------------------------------------------------


def test_main_key_is_64_random_hex_digits() -> None:
    key = main_key()
    assert re.fullmatch(r"[0-9a-f]{64}", key), "expected 32 random bytes as hex"
    assert processing.currentProcess().authkey == key.encode()
    assert len(set(key)) > 4


def test_each_interpreter_gets_its_own_key() -> None:
    code = "import processing; print(processing.currentProcess().getAuthKey())"
    first, second = run_python(code), run_python(code)
    keys = {first.stdout.strip(), second.stdout.strip(), main_key()}
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)
    assert len(keys) == 3


def test_a_new_process_object_inherits_its_creators_key() -> None:
    p = processing.Process()
    assert p.getAuthKey() == main_key()
    assert p.authkey == processing.currentProcess().authkey


def test_children_inherit_the_key(method: str) -> None:
    p = processing.Process(target=proc_targets.report_grandchild_key, args=(method,), method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [(main_key(), main_key())]


def test_set_auth_key_on_a_process_object(method: str) -> None:
    p = processing.Process(target=proc_targets.report_grandchild_key, args=(method,), method=method)
    p.setAuthKey(SECRET)
    assert p.getAuthKey() == SECRET
    assert main_key() != SECRET  # only that object changed
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [(SECRET, SECRET)]  # the child has it, and so do its children


def test_authkey_property_setter_and_bytes_keys(method: str) -> None:
    p = processing.Process(target=proc_targets.report_identity, method=method)
    p.authkey = b"\xff\x00binary key"
    assert p.authkey == b"\xff\x00binary key"
    assert p.getAuthKey() == b"\xff\x00binary key".hex()  # not UTF-8: shown as hex
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages[0]["authkey"] == b"\xff\x00binary key".hex()


def test_setting_the_main_processs_key_affects_later_children(method: str) -> None:
    before = processing.Process()
    processing.currentProcess().setAuthKey(SECRET)
    after = processing.Process(target=proc_targets.report_identity, method=method)
    assert before.getAuthKey() != SECRET
    assert after.getAuthKey() == SECRET
    after.start()
    after.join()
    assert after.messages[0]["authkey"] == SECRET


@pytest.mark.parametrize(
    ("bad", "error"),
    [("", ValueError), (b"", ValueError), (12345678901234, TypeError), (None, TypeError),
     (["a", "list"], TypeError), (3.25, TypeError)],
)
def test_invalid_keys_are_rejected_without_showing_them(bad: object, error: type[Exception]) -> None:
    p = processing.Process()
    before = p.authkey
    with pytest.raises(error) as caught:
        p.setAuthKey(bad)  # type: ignore[arg-type]
    with pytest.raises(error):
        p.authkey = bad  # type: ignore[assignment]
    assert p.authkey == before
    if bad not in ("", b"", None):
        assert str(bad) not in str(caught.value)
        assert repr(bad) not in str(caught.value)


def test_the_key_never_appears_in_reprs(method: str) -> None:
    processing.currentProcess().setAuthKey(SECRET)
    p = processing.Process(target=proc_targets.noop, method=method, daemon=True)
    texts = [repr(p), str(p), repr(processing.currentProcess())]
    p.start()
    texts.append(repr(p))
    p.join()
    texts.append(repr(p))
    for text in texts:
        assert SECRET not in text
        assert SECRET.encode().hex() not in text


def test_pickling_errors_do_not_show_the_key() -> None:
    p = processing.Process(target=proc_targets.echo, args=(threading.Lock(),), method="spawn")
    p.setAuthKey(SECRET)
    with pytest.raises(processing.TargetPicklingError) as caught:
        p.start()
    assert SECRET not in str(caught.value)


# -- processing.connection ---------------------------------------------------------------


def serve_once(listener, replies: list) -> threading.Thread:
    def serve() -> None:
        try:
            with listener.accept() as conn:
                replies.append(conn.recv())
                conn.send("ack")
        except BaseException as error:
            replies.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


def test_listener_and_client_with_the_same_key_talk() -> None:
    from processing import connection

    replies: list = []
    with connection.Listener(authkey=SECRET) as listener:
        thread = serve_once(listener, replies)
        with connection.Client(listener.address, authkey=SECRET) as conn:
            conn.send({"hello": [1, 2]})
            assert conn.recv() == "ack"
        thread.join(30)
    assert replies == [{"hello": [1, 2]}]


def test_listener_and_client_default_to_the_current_key_and_lazy_names() -> None:
    replies: list = []
    with processing.Listener() as listener:  # lazily imported names on the package
        thread = serve_once(listener, replies)
        with processing.Client(listener.address) as conn:
            conn.send("default key")
            assert conn.recv() == "ack"
        thread.join(30)
    assert replies == ["default key"]


def test_listener_over_tcp_loopback() -> None:
    from processing import connection

    replies: list = []
    with connection.Listener(("127.0.0.1", 0), authkey=SECRET) as listener:
        thread = serve_once(listener, replies)
        with connection.Client(listener.address, authkey=SECRET) as conn:
            conn.send("tcp")
            assert conn.recv() == "ack"
        thread.join(30)
    assert replies == ["tcp"]


def test_client_with_a_wrong_key_is_refused_and_closed_by_the_listener() -> None:
    from processing import connection

    replies: list = []
    with connection.Listener(authkey=SECRET) as listener:
        thread = serve_once(listener, replies)
        raw = stdlib_connection.Client(listener.address)  # no handshake of its own
        try:
            with pytest.raises(AuthenticationError):
                stdlib_connection.answer_challenge(raw, b"the wrong key")
            with pytest.raises((EOFError, OSError)):
                raw.recv_bytes()  # the listener closed its end
        finally:
            raw.close()
        thread.join(30)
    [error] = replies
    assert isinstance(error, AuthenticationError)
    assert SECRET not in str(error)


def test_client_refuses_a_listener_with_another_key_and_closes() -> None:
    from processing import connection

    raw_listener = stdlib_connection.Listener()
    outcome: list = []

    def serve() -> None:
        conn = raw_listener.accept()
        try:
            stdlib_connection.deliver_challenge(conn, b"the listener's key")
        except AuthenticationError as error:
            outcome.append(error)
        try:
            conn.recv_bytes()
        except (EOFError, OSError) as error:
            outcome.append(error)  # the client closed its end
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with pytest.raises(AuthenticationError) as caught:
            connection.Client(raw_listener.address, authkey=SECRET)
        assert SECRET not in str(caught.value)
        thread.join(30)
    finally:
        raw_listener.close()
    assert [type(e) for e in outcome][:1] == [AuthenticationError]
    assert len(outcome) == 2 and isinstance(outcome[1], (EOFError, OSError))


def test_both_sides_of_a_mismatch_raise() -> None:
    from processing import connection

    replies: list = []
    with connection.Listener(authkey=SECRET) as listener:
        thread = serve_once(listener, replies)
        with pytest.raises(AuthenticationError):
            connection.Client(listener.address, authkey="another key")
        thread.join(30)
    assert len(replies) == 1 and isinstance(replies[0], AuthenticationError)


def test_unix_listener_socket_is_private(tmp_path) -> None:
    from processing import connection

    with connection.Listener(authkey=SECRET) as listener:
        assert isinstance(listener.address, str)
        assert stat.S_IMODE(os.stat(listener.address).st_mode) == 0o600
    path = str(tmp_path / "explicit.sock")
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        with connection.Listener(path, authkey=SECRET) as listener:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("bad", ["", b"", 42])
def test_connection_rejects_invalid_keys(bad: object) -> None:
    from processing import connection

    with pytest.raises((TypeError, ValueError)):
        connection.Listener(authkey=bad)  # type: ignore[arg-type]
    with connection.Listener(authkey=SECRET) as listener, pytest.raises((TypeError, ValueError)):
        connection.Client(listener.address, authkey=bad)  # type: ignore[arg-type]


def test_client_validates_the_key_before_connecting() -> None:
    from processing import connection

    with pytest.raises(ValueError):
        connection.Client("/nonexistent/processing-test.sock", authkey="")


def test_a_child_connects_with_the_inherited_key(method: str) -> None:
    from processing import connection

    with connection.Listener() as listener:
        p = processing.Process(target=proc_targets.connect_and_send, args=(listener.address, "hi"),
                               method=method)
        p.start()
        with listener.accept() as conn:
            assert conn.recv() == "hi"
            conn.send("ack")
        p.join()
    assert p.exitcode == 0


def test_a_child_with_another_key_is_refused(method: str) -> None:
    from processing import connection

    with connection.Listener() as listener:
        p = processing.Process(target=proc_targets.connect_and_send, args=(listener.address, "hi"),
                               method=method)
        p.setAuthKey(SECRET)  # the child's key differs from this process's (the listener's) key
        p.start()
        try:
            with pytest.raises(AuthenticationError):
                listener.accept()
        finally:
            p.join()
    assert p.exitcode == 7


# -- the parent-child control channel ----------------------------------------------------------


def channel_pair(parent_key: bytes, child_key: bytes) -> tuple[ParentChannel, ChildChannel, socket.socket]:
    ours, theirs = socket.socketpair()
    parent = ParentChannel(ours, parent_key)
    child = ChildChannel(theirs, child_key, parent.challenge)
    return parent, child, theirs


def pump_all(parent: ParentChannel, expected: int) -> list:
    messages: list = []
    for _ in range(1000):
        messages += parent.pump()
        if len(messages) >= expected:
            break
    return messages


def test_channel_accepts_messages_signed_with_the_key() -> None:
    parent, child, theirs = channel_pair(b"k" * 32, b"k" * 32)
    try:
        for obj in ("one", {"two": 2}, [3]):
            child.send(obj)
        assert pump_all(parent, 3) == ["one", {"two": 2}, [3]]
        theirs.close()
        assert parent.pump() == []
        assert parent.eof
    finally:
        parent.close()
        theirs.close()


def test_channel_rejects_a_message_signed_with_another_key() -> None:
    parent, child, theirs = channel_pair(b"k" * 32, b"x" * 32)
    try:
        child.send("forged")
        child.send("and another")
        with pytest.raises(AuthenticationError) as caught:
            pump_all(parent, 1)
        assert "k" * 32 not in str(caught.value) and "x" * 32 not in str(caught.value)
        assert parent.eof
        assert parent.pump() == []  # nothing more is read from this channel
    finally:
        parent.close()
        theirs.close()


def test_channel_rejects_a_replayed_message() -> None:
    key = b"k" * 32
    parent, _, theirs = channel_pair(key, key)
    recorder_ours, recorder_theirs = socket.socketpair()
    try:
        ChildChannel(recorder_theirs, key, parent.challenge).send("pay 10")
        frame = recorder_ours.recv(65536)
        theirs.sendall(frame)
        assert pump_all(parent, 1) == ["pay 10"]
        theirs.sendall(frame)  # the same signed frame again
        with pytest.raises(AuthenticationError):
            pump_all(parent, 1)
    finally:
        for s in (recorder_ours, recorder_theirs, theirs):
            s.close()
        parent.close()


def test_channel_rejects_a_message_signed_for_another_challenge() -> None:
    key = b"k" * 32
    parent, _, theirs = channel_pair(key, key)
    try:
        ChildChannel(theirs, key, os.urandom(32)).send("for another child")
        with pytest.raises(AuthenticationError):
            pump_all(parent, 1)
    finally:
        parent.close()
        theirs.close()


def test_a_forged_message_from_a_real_child_is_dropped(method: str, caplog: pytest.LogCaptureFixture) -> None:
    exited = []
    with processing.subscribe(exited=lambda p, code: exited.append((p, code))):
        p = processing.Process(target=proc_targets.forge_message, method=method)
        p.start()
        p.join()
    assert p.exitcode == 0
    assert p.messages == ["genuine"]  # the forgery and everything after it are dropped
    assert (p, 0) in exited
    err = "\n".join(record.getMessage() for record in caplog.records if record.name == "processing")
    assert p.name in err and "auth" in err.lower()
    assert main_key() not in err  # the log line does not show the key
    # The parent is unharmed: the next child works as usual.
    q = processing.Process(target=proc_targets.send, args=("fine",), method=method)
    q.start()
    q.join()
    assert q.messages == ["fine"]


@pytest.mark.parametrize(
    ("method", "from_thread"),
    [
        ("fork", False),
        ("spawn", False),
        ("forkserver", False),
        ("fork", True),
        ("spawn", True),
        ("forkserver", True),
    ],
    ids=lambda value: {False: "main-thread", True: "other-thread"}.get(value, value),
)
def test_a_rejected_message_does_not_kill_the_child(method: str, from_thread: bool) -> None:
    p = processing.Process(target=proc_targets.forge_then_carry_on, method=method)
    if from_thread:
        starter = threading.Thread(target=p.start)
        starter.start()
        starter.join()
    else:
        p.start()
    p.join()
    assert p.messages == ["genuine"]
    assert p.exitcode == 0


def test_genuine_messages_read_together_with_a_forgery_are_kept(method: str) -> None:
    p = processing.Process(
        target=proc_targets.send_in_one_write, args=(("genuine", False), ("forged", True)), method=method
    )
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == ["genuine"]


def test_an_unloadable_message_does_not_lose_the_others(method: str, events) -> None:
    p = processing.Process(
        target=proc_targets.send_in_one_write,
        args=(("before", False), (proc_targets.UNLOADABLE, False), ("after", False)),
        method=method,
    )
    p.start()
    p.join()
    monitor_settled()
    assert p.exitcode == 0
    assert ("exited", 0) in events.of(p)
    assert p.messages == ["before", "after"]


def test_genuine_frames_written_in_one_go_all_arrive() -> None:
    """Control for the two tests above: the one-write helper itself delivers genuine frames."""
    p = processing.Process(
        target=proc_targets.send_in_one_write, args=(("one", False), ("two", False), ("three", False)),
        method="fork",
    )
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == ["one", "two", "three"]


def test_the_channel_keeps_the_key_it_was_started_with(method: str) -> None:
    """A child that changes its own key (for its own children) can still talk to its parent."""
    p = processing.Process(target=proc_targets.change_key_then_send, args=(SECRET,), method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [SECRET]
