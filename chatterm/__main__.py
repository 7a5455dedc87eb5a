"""``python -m chatterm`` and the ``chatterm`` script.

The CLI is imported inside :func:`run` so that a Ctrl-C while Python is still importing it ends
as an interruption (exit 130, one line), not as a traceback.
"""

import sys


def run() -> None:
    try:
        from chatterm.cli import main
    except KeyboardInterrupt:
        print("chatterm: interrupted", file=sys.stderr)
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
