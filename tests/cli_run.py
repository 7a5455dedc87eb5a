"""Running the real `chatterm` command in a subprocess, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's (already isolated) environment plus ``extra``; no terminal, no colour hints."""
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [sys.executable, "-m", "chatterm", *args],
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        env=cli_env(env),
        timeout=timeout,
        cwd=cwd,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def assert_one_line_error(stderr: str) -> None:
    """Failures are one line for the user, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("chatterm: error:")]
    assert len(lines) == 1, stderr


_PROBE = """
import json, sys
prefixes = tuple(json.loads(sys.argv[2]))
sys.argv = ["chatterm", *json.loads(sys.argv[1])]
from chatterm.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
print("PROBE", json.dumps([code, sorted(m for m in sys.modules if m.split(".")[0] in prefixes
                                        or m in prefixes)]), file=sys.stderr)
"""


def modules_loaded_by(
    args: list[str], watched: list[str], env: Mapping[str, str] | None = None
) -> tuple[int, list[str], str]:
    """Run chatterm in-process in a fresh interpreter; say which watched modules it imported.

    Returns (exit code, watched modules found in sys.modules, stdout).
    """
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(watched)],
        capture_output=True, text=True, env=cli_env(env), stdin=subprocess.DEVNULL, timeout=60,
    )
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, proc.stderr
    code, found = json.loads(line[len("PROBE "):])
    return code, found, proc.stdout
