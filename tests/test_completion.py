"""Shell completion through typer: scripts for bash, zsh and fish, and what they complete.

Completion is asked for the way each shell's script asks: a `chatterm` process with
``_CHATTERM_COMPLETE`` (and the shell's own variables) set. For bash, which this machine has,
the generated script is also sourced into a real bash and its completion function run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import cli_env, run_cli

SCRIPT_MARKERS = {
    "bash": "complete -o default -F _chatterm_completion chatterm",
    "zsh": "#compdef chatterm",
    "fish": "complete --command chatterm",
}


def _config(text: str) -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "chatterm" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _complete_zsh(line: str) -> list[str]:
    result = run_cli(env={"_CHATTERM_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _complete_bash(words: list[str]) -> list[str]:
    result = run_cli(env={"_CHATTERM_COMPLETE": "complete_bash",
                          "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("shell", sorted(SCRIPT_MARKERS))
def test_completion_script_for_each_shell(shell: str) -> None:
    shown = run_cli("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0, shown.stderr
    assert SCRIPT_MARKERS[shell] in shown.stdout
    assert f"_CHATTERM_COMPLETE=complete_{shell}" in shown.stdout
    sourced = run_cli(env={"_CHATTERM_COMPLETE": f"source_{shell}"})
    assert sourced.returncode == 0 and SCRIPT_MARKERS[shell] in sourced.stdout


def test_help_lists_the_completion_options() -> None:
    result = run_cli("--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_commands_and_backends_complete() -> None:
    assert {"ask", "doctor", "sessions"} <= set(_complete_bash(["chatterm", ""]))
    assert _complete_bash(["chatterm", "ask", "--backend", "o"]) == ["openai"]


def test_profile_names_complete_with_descriptions() -> None:
    _config('[profiles.alpha]\nbackend = "openai"\nmodel = "m:1"\n'
            '[profiles.al2]\nbackend = "local"\n[profiles.beta]\nbackend = "local"\n')
    assert _complete_bash(["chatterm", "ask", "-p", "al"]) == ["al2", "alpha"]
    zsh = "\n".join(_complete_zsh("chatterm ask --profile al"))
    assert zsh.startswith("_arguments")
    assert '"al2":"local"' in zsh and '"alpha":"openai m\\\\:1"' in zsh  # ':' escaped for zsh
    assert _complete_bash(["chatterm", "doctor", "-p", "b"]) == ["beta"]


def test_a_broken_config_completes_nothing_quietly() -> None:
    _config("this is = not [toml\n")
    result = run_cli(env={"_CHATTERM_COMPLETE": "complete_bash",
                          "COMP_WORDS": "chatterm ask -p ", "COMP_CWORD": "3"})
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr == ""


def test_conversation_ids_complete(openai_server) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    assert _complete_bash(["chatterm", "sessions", "show", ""]) == []  # no history yet
    history = Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    assert not history.exists()  # completing did not create it
    for prompt in ("first \x1b[31mred", "second"):
        assert run_cli("ask", "-m", "echo@completion", prompt, env=env).returncode == 0
    ids = [c["id"] for c in json.loads(run_cli("sessions", "list", "--json").stdout)]
    assert sorted(_complete_bash(["chatterm", "sessions", "show", ""])) == sorted(ids)
    first = ids[-1]
    assert _complete_bash(["chatterm", "sessions", "rm", first[:6]]) == [first]
    assert _complete_bash(["chatterm", "ask", "--session", first[:6]]) == [first]
    described = "\n".join(_complete_zsh(f"chatterm sessions export {first[:6]}"))
    assert f'"{first}":"first ␛[31mred"' in described and "\x1b" not in described


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_sources_the_script_and_completes(tmp_path: Path) -> None:
    _config('[profiles.gpu]\nbackend = "local"\n[profiles.groq]\nbackend = "openai"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "chatterm"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m chatterm "$@"\n')
    wrapper.chmod(0o755)
    script = run_cli(env={"_CHATTERM_COMPLETE": "source_bash"}).stdout
    driver = (
        f"{script}\n"
        "COMP_WORDS=(chatterm ask --profile g); COMP_CWORD=3\n"
        "_chatterm_completion chatterm\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = cli_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", driver], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gpu", "groq"]


def test_completing_imports_nothing_heavy() -> None:
    from cli_run import modules_loaded_by

    _config('[profiles.alpha]\nbackend = "openai"\n')
    env = {"_CHATTERM_COMPLETE": "complete_bash", "COMP_WORDS": "chatterm ask -p a",
           "COMP_CWORD": "3"}
    code, found, out = modules_loaded_by(
        [], ["httpx", "textual", "torch", "transformers", "huggingface_hub", "rich.markdown"], env
    )
    assert (code, found, out.split()) == (0, [], ["alpha"])


@pytest.mark.parametrize(("shell", "script", "rc", "hook"), [
    ("bash", ".bash_completions/chatterm.sh", ".bashrc", ".bash_completions/chatterm.sh"),
    ("zsh", ".zfunc/_chatterm", ".zshrc", "fpath+=~/.zfunc"),
    ("fish", ".config/fish/completions/chatterm.fish", None, None),
])
def test_install_completion_writes_the_script_where_the_shell_looks(
    tmp_path: Path, shell: str, script: str, rc: str | None, hook: str | None
) -> None:
    env = {"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = run_cli("--install-completion", shell, env=env)
    assert result.returncode == 0, result.stderr
    assert SCRIPT_MARKERS[shell] in (tmp_path / script).read_text()
    if rc is not None and hook is not None:
        assert hook in (tmp_path / rc).read_text()
