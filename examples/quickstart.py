"""The seed page's example, then interactively defined targets under every start method.

Run it with ``python examples/quickstart.py``.
"""

import signal
import time

import processing


def main() -> None:
    p = processing.Process(target=time.sleep, args=(1000,))
    print(p, p.isAlive())
    p.start()
    print(p, p.isAlive())
    p.terminate()
    print(p, p.isAlive())
    print(p.getExitCode() == -signal.SIGTERM)

    scale = 10
    for method in ("fork", "spawn", "forkserver"):
        lines = []
        child = processing.Process(
            target=lambda x, method=method: print(f"{method}: {x} * {scale} = {x * scale}"),
            args=(4,),
            method=method,
            output=lambda stream, data, lines=lines: lines.append(data.decode()),
        )
        child.start()
        child.join()
        print(f"{child!r} printed {''.join(lines).strip()!r}")


if __name__ == "__main__":
    main()
