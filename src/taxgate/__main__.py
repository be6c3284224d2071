"""`python -m taxgate` and the `taxgate` command (`run`).

The command line's modules are imported inside `run`, not here, for two reasons. A Ctrl-C while
they load (most of a second) is then one line, as it is later (`cli.main`). And a worker process,
which imports the main module as __mp_main__ when it starts, does not load them at all.
"""

import signal
import sys


def run() -> None:
    # A Ctrl-C amid the imports is noted and acted on after them: raised inside an import, Python
    # may report it as an "Exception ignored" and go on.
    stopped: list[int] = []
    watching = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if watching:
        signal.signal(signal.SIGINT, lambda signum, frame: stopped.append(signum))
    from taxgate.cli import main

    if watching:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if stopped:
        sys.stderr.write("taxgate: stopped (Ctrl-C)\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
