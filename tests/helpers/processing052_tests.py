"""processing 0.52's own tests of Process objects, connections and pickling, ported to Python 3.

From ``tests/__init__.py`` of the processing 0.52 sdist (2008, R. Oudkerk;
BSD licence): ``_TestProcess``, ``_UpperCaser``, ``_TestSubclassingProcess``,
``_TestConnection``, ``_TestListenerClient`` and ``_TestPicklingConnections``,
of the 'processes' type. The port changes only what Python 3 requires: print
and except syntax, bytes for byte messages (``array('c')`` is a bytearray),
``assertEquals`` is ``assertEqual``, the connection methods are Python 3's
(``recv_bytes`` for ``recvBytes``, as ``multiprocessing`` renamed them), and
the targets are classmethods instead of the test case's bound methods (a
unittest case cannot be pickled; CPython's own suite made the same change).
The check of ``connections_are_picklable`` is gone: in Python 3 they are. One
fix: ``_listener`` listens on its plain socket before it sends the address,
not after (the client could connect first and be refused, as CPython's
version, which uses ``socket.create_server``, no longer can).

A module of its own, without pytest: children import it to find their targets.
"""

# ruff: noqa

import array
import os
import socket
import time
import unittest

import processing
import processing.connection

DELTA = 0.1
CHECK_TIMINGS = False
TIMEOUT1, TIMEOUT2, TIMEOUT3 = 0.1, 0.1, 0.1


class TimingWrapper(object):

    def __init__(self, func):
        self.func = func
        self.elapsed = None

    def __call__(self, *args, **kwds):
        t = time.time()
        try:
            return self.func(*args, **kwds)
        finally:
            self.elapsed = time.time() - t


class BaseTestCase(object):

    ALLOWED_TYPES = ('processes', 'manager', 'threads')

    def assertTimingAlmostEqual(self, a, b):
        if CHECK_TIMINGS:
            self.assertAlmostEqual(a, b, 1)


class _TestProcess(BaseTestCase):

    ALLOWED_TYPES = ('processes', 'threads')

    def test_current(self):
        current = self.currentProcess()
        self.assertTrue(current.isAlive())
        self.assertTrue(not current.isDaemon())
        if self.TYPE != 'threads':
            authkey = current.getAuthKey()
            self.assertTrue(type(authkey) is str)
            self.assertTrue(len(authkey) > 0)
            self.assertEqual(current.getPid(), os.getpid())
            self.assertEqual(current.getExitCode(), None)

    @classmethod
    def _test(cls, q, *args, **kwds):
        current = cls.currentProcess()
        q.put(args)
        q.put(kwds)
        q.put(current.getName())
        if cls.TYPE != 'threads':
            q.put(current.getAuthKey())
            q.put(current.getPid())

    def test_process(self):
        q = self.Queue(1)
        e = self.Event()
        args = (q, 1, 2)
        kwargs = {'hello':23, 'bye':2.54}
        name = 'SomeProcess'
        p = self.Process(
            target=self._test, args=args, kwargs=kwargs, name=name
            )
        p.setDaemon(True)
        current = self.currentProcess()

        if self.TYPE != 'threads':
            self.assertEqual(p.getAuthKey(), current.getAuthKey())
        self.assertEqual(p.isAlive(), False)
        self.assertEqual(p.isDaemon(), True)
        self.assertTrue(p not in self.activeChildren())
        self.assertTrue(type(self.activeChildren()) is list)
        self.assertEqual(p.getExitCode(), None)

        p.start()

        self.assertEqual(p.getExitCode(), None)
        self.assertEqual(p.isAlive(), True)
        self.assertTrue(p in self.activeChildren())

        self.assertEqual(q.get(), args[1:])
        self.assertEqual(q.get(), kwargs)
        self.assertEqual(q.get(), p.getName())
        if self.TYPE != 'threads':
            self.assertEqual(q.get(), current.getAuthKey())
            self.assertEqual(q.get(), p.getPid())

        p.join()

        self.assertEqual(p.getExitCode(), 0)
        self.assertEqual(p.isAlive(), False)
        self.assertTrue(p not in self.activeChildren())

    @classmethod
    def _test_terminate(cls):
        time.sleep(1000)

    def test_terminate(self):
        if self.TYPE == 'threads':
            return

        p = self.Process(target=self._test_terminate)
        p.setDaemon(True)
        p.start()

        self.assertEqual(p.isAlive(), True)
        self.assertTrue(p in self.activeChildren())
        self.assertEqual(p.getExitCode(), None)

        p.terminate()

        join = TimingWrapper(p.join)
        self.assertEqual(join(), None)
        self.assertTimingAlmostEqual(join.elapsed, 0.0)

        self.assertEqual(p.isAlive(), False)
        self.assertTrue(p not in self.activeChildren())

        p.join()

        # XXX sometimes get p.getExitCode() == 0 on Windows ...
        #self.assertEqual(p.getExitCode(), -signal.SIGTERM)

    def test_cpuCount(self):
        try:
            cpus = processing.cpuCount()
        except NotImplementedError:
            cpus = 1
        self.assertTrue(type(cpus) is int)
        self.assertTrue(cpus >= 1)

    def test_activeChildren(self):
        self.assertEqual(type(self.activeChildren()), list)

        p = self.Process(target=time.sleep, args=(DELTA,))
        self.assertTrue(p not in self.activeChildren())

        p.start()
        self.assertTrue(p in self.activeChildren())

        p.join()
        self.assertTrue(p not in self.activeChildren())

    @classmethod
    def _test_recursion(cls, wconn, id):
        wconn.send(id)
        if len(id) < 2:
            for i in range(2):
                p = cls.Process(
                    target=cls._test_recursion, args=(wconn, id+[i])
                    )
                p.start()
                p.join()

    def test_recursion(self):
        rconn, wconn = self.Pipe(duplex=False)
        self._test_recursion(wconn, [])

        time.sleep(DELTA)
        result = []
        while rconn.poll():
            result.append(rconn.recv())

        expected = [
            [],
              [0],
                [0, 0],
                [0, 1],
              [1],
                [1, 0],
                [1, 1]
            ]
        self.assertEqual(result, expected)


class _UpperCaser(processing.Process):

    def __init__(self):
        processing.Process.__init__(self)
        self.child_conn, self.parent_conn = processing.Pipe()

    def run(self):
        self.parent_conn.close()
        for s in iter(self.child_conn.recv, None):
            self.child_conn.send(s.upper())
        self.child_conn.close()

    def submit(self, s):
        assert type(s) is str
        self.parent_conn.send(s)
        return self.parent_conn.recv()

    def stop(self):
        self.parent_conn.send(None)
        self.parent_conn.close()
        self.child_conn.close()


class _TestSubclassingProcess(BaseTestCase):

    ALLOWED_TYPES = ('processes',)

    def test_subclassing(self):
        uppercaser = _UpperCaser()
        uppercaser.start()
        self.assertEqual(uppercaser.submit('hello'), 'HELLO')
        self.assertEqual(uppercaser.submit('world'), 'WORLD')
        uppercaser.stop()
        uppercaser.join()


class _TestConnection(BaseTestCase):

    ALLOWED_TYPES = ('processes', 'threads')

    @classmethod
    def _echo(cls, conn):
        for msg in iter(conn.recv_bytes, b''):
            conn.send_bytes(msg)
        conn.close()

    def test_connection(self):
        conn, child_conn = self.Pipe()

        p = self.Process(target=self._echo, args=(child_conn,))
        p.setDaemon(True)
        p.start()

        seq = [1, 2.25, None]
        msg = b'hello world'
        longmsg = msg * 10
        arr = array.array('i', range(4))

        if self.TYPE == 'processes':
            self.assertEqual(type(conn.fileno()), int)

        self.assertEqual(conn.send(seq), None)
        self.assertEqual(conn.recv(), seq)

        self.assertEqual(conn.send_bytes(msg), None)
        self.assertEqual(conn.recv_bytes(), msg)

        if self.TYPE == 'processes':
            buffer = array.array('i', [0]*10)
            expected = list(arr) + [0] * (10 - len(arr))
            self.assertEqual(conn.send_bytes(arr), None)
            self.assertEqual(conn.recv_bytes_into(buffer),
                             len(arr) * buffer.itemsize)
            self.assertEqual(list(buffer), expected)

            buffer = array.array('i', [0]*10)
            expected = [0] * 3 + list(arr) + [0] * (10 - 3 - len(arr))
            self.assertEqual(conn.send_bytes(arr), None)
            self.assertEqual(conn.recv_bytes_into(buffer, 3 * buffer.itemsize),
                             len(arr) * buffer.itemsize)
            self.assertEqual(list(buffer), expected)

            buffer = bytearray(b' ' * 40)
            self.assertEqual(conn.send_bytes(longmsg), None)
            try:
                res = conn.recv_bytes_into(buffer)
            except processing.connection.BufferTooShort as e:
                self.assertEqual(e.args, (longmsg,))
            else:
                self.fail('expected BufferTooShort, got %s' % res)

        poll = TimingWrapper(conn.poll)

        self.assertEqual(poll(), False)
        self.assertTimingAlmostEqual(poll.elapsed, 0)

        self.assertEqual(poll(TIMEOUT1), False)
        self.assertTimingAlmostEqual(poll.elapsed, TIMEOUT1)

        conn.send(None)

        self.assertEqual(poll(TIMEOUT1), True)
        self.assertTimingAlmostEqual(poll.elapsed, 0)

        self.assertEqual(conn.recv(), None)

        really_big_msg = b'X' * (1024 * 1024 * 16)       # 16 megabytes
        conn.send_bytes(really_big_msg)
        self.assertEqual(conn.recv_bytes(), really_big_msg)

        conn.send_bytes(b'')                              # tell child to quit
        child_conn.close()

        if self.TYPE == 'processes':
            self.assertRaises(EOFError, conn.recv)
            self.assertRaises(EOFError, conn.recv_bytes)

        p.join()

    def test_duplex_false(self):
        reader, writer = self.Pipe(duplex=False)
        self.assertEqual(writer.send(1), None)
        self.assertEqual(reader.recv(), 1)
        if self.TYPE == 'processes':
            self.assertRaises(IOError, writer.recv)
            self.assertRaises(IOError, reader.send, 2)

    def test_spawn_close(self):
        # We test that a pipe connection can be closed by parent
        # process immediately after child is spawned.  On Windows this
        # would have sometimes failed on old versions because
        # child_conn would be closed before the child got a chance to
        # duplicate it.
        conn, child_conn = self.Pipe()

        p = self.Process(target=self._echo, args=(child_conn,))
        p.start()
        child_conn.close()    # this might complete before child initializes

        conn.send_bytes(b'hello')
        self.assertEqual(conn.recv_bytes(), b'hello')

        conn.send_bytes(b'')
        conn.close()
        p.join()


class _TestListenerClient(BaseTestCase):

    ALLOWED_TYPES = ('processes', 'threads')

    @classmethod
    def _test(cls, address):
        conn = cls.connection.Client(address)
        conn.send('hello')
        conn.close()

    def test_listener_client(self):
        for family in self.connection.families:
            l = self.connection.Listener(family=family)
            p = self.Process(target=self._test, args=(l.address,))
            p.setDaemon(True)
            p.start()
            conn = l.accept()
            self.assertEqual(conn.recv(), 'hello')
            p.join()
            l.close()


class _TestPicklingConnections(BaseTestCase):

    ALLOWED_TYPES = ('processes', 'threads')

    @classmethod
    def _listener(cls, conn, families):
        for fam in families:
            l = cls.connection.Listener(family=fam)
            conn.send(l.address)
            new_conn = l.accept()
            conn.send(new_conn)

        if cls.TYPE == 'processes':
            l = socket.socket()
            l.bind(('localhost', 0))
            l.listen(1)  # port: before the address goes out (the original raced the client here)
            conn.send(l.getsockname())
            new_conn, addr = l.accept()
            conn.send(new_conn)

        conn.recv()

    @classmethod
    def _remote(cls, conn):
        for (address, msg) in iter(conn.recv, None):
            client = cls.connection.Client(address)
            client.send(msg.upper())
            client.close()

        if cls.TYPE == 'processes':
            address, msg = conn.recv()
            client = socket.socket()
            client.connect(address)
            client.sendall(msg.upper())
            client.close()

        conn.close()

    def test_pickling(self):
        families = self.connection.families

        lconn, lconn0 = self.Pipe()
        lp = self.Process(target=self._listener, args=(lconn0, families))
        lp.start()
        lconn0.close()

        rconn, rconn0 = self.Pipe()
        rp = self.Process(target=self._remote, args=(rconn0,))
        rp.start()
        rconn0.close()

        for fam in families:
            msg = 'This connection uses family %s' % fam
            address = lconn.recv()
            rconn.send((address, msg))
            new_conn = lconn.recv()
            self.assertEqual(new_conn.recv(), msg.upper())

        rconn.send(None)

        if self.TYPE == 'processes':
            msg = b'This connection uses a normal socket'
            address = lconn.recv()
            rconn.send((address, msg))
            new_conn = lconn.recv()
            self.assertEqual(new_conn.recv(100), msg.upper())

        lconn.send(None)

        rconn.close()
        lconn.close()

        lp.join()
        rp.join()


#
# Mixins (ours): the processes type under each start method
#

METHODS = ("fork", "spawn", "forkserver")


def _mixin(method):

    class ProcessesMixin(object):
        TYPE = 'processes'
        Process = processing.Process
        Queue = staticmethod(processing.Queue)
        Lock = staticmethod(processing.Lock)
        RLock = staticmethod(processing.RLock)
        Semaphore = staticmethod(processing.Semaphore)
        BoundedSemaphore = staticmethod(processing.BoundedSemaphore)
        Condition = staticmethod(processing.Condition)
        Event = staticmethod(processing.Event)
        Value = staticmethod(processing.Value)
        Array = staticmethod(processing.Array)
        currentProcess = staticmethod(processing.currentProcess)
        activeChildren = staticmethod(processing.activeChildren)
        Pipe = staticmethod(processing.Pipe)
        connection = processing.connection

        def setUp(self):
            self._previous_method = processing.getStartMethod()
            processing.setStartMethod(method)
            super().setUp()

        def tearDown(self):
            super().tearDown()
            processing.setStartMethod(self._previous_method)

    return ProcessesMixin


BASES = (_TestProcess, _TestSubclassingProcess, _TestConnection, _TestListenerClient, _TestPicklingConnections)

#: ``Test052<Base>_<method>``, defined here so that children find their classmethod targets by reference.
CASES = {}
for _method in METHODS:
    _Mixin = _mixin(_method)
    for _base in BASES:
        _name = f"Test052{_base.__name__[5:]}_{_method}"
        _case = type(_name, (_Mixin, _base, unittest.TestCase), {"__module__": __name__})
        _case.__qualname__ = _name
        globals()[_name] = CASES[_name] = _case
del _method, _Mixin, _base, _name, _case
