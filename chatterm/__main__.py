"""``python -m chatterm`` and the ``chatterm`` script.

The ending signals are taken over before anything else is imported, and the CLI is imported
inside :func:`run`, so a Ctrl-C (or SIGTERM, SIGHUP) while Python is still importing chatterm
ends with the documented exit code and one line, not a traceback.
"""

import sys


def run() -> None:
    try:
        from chatterm import endings

        endings.install()
        from chatterm.cli import main
    except BaseException as exc:  # only an ending signal can land here
        code = getattr(exc, "exit_code", 130 if isinstance(exc, KeyboardInterrupt) else None)
        if not isinstance(code, int):
            raise
        print(f"chatterm: {getattr(exc, 'message', 'interrupted')}", file=sys.stderr)
        sys.exit(code)
    main()


if __name__ == "__main__":
    run()
