"""The fork server: a small, fresh interpreter that forks this process's children on request.

- :mod:`~processing.forkserver.protocol`: the requests and replies both sides speak;
- :mod:`~processing.forkserver.client`: this process's handle on its server (one per process);
- :mod:`~processing.forkserver.server`: the server itself, which runs in its own interpreter.
"""
