"""Backends are found through the `chatterm.backends` entry-point group, like any plugin."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from cli_run import assert_one_line_error, modules_loaded_by, run_cli

from chatterm.plugins import available_backends

PLUGIN = textwrap.dedent(
    '''
    from chatterm.backend import Backend, Finish, OptionSpec, TextDelta, Usage, COMMON_OPTIONS

    class ShoutBackend(Backend):
        name = "shout"
        options = {**COMMON_OPTIONS, "volume": OptionSpec("volume", int, "how loud", 1, 11)}

        async def stream(self, request):
            text = request.messages[-1].content.upper() + "!" * self.__dict__.get("v", 1)
            for word in text.split(" "):
                yield TextDelta(word + " ")
            yield Usage(1, 2)
            yield Finish("stop")
    '''
)


def make_plugin_dir(root: Path) -> Path:
    """A third-party plugin as pip would leave it: a module plus dist-info with entry points."""
    (root / "shout_plugin.py").write_text(PLUGIN)
    dist = root / "shout_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[chatterm.backends]\nshout = shout_plugin:ShoutBackend\n"
    )
    return root


def test_builtin_backends_are_registered_entry_points() -> None:
    assert {"openai", "local"} <= set(available_backends())


def test_third_party_backend_is_found_and_used(tmp_path: Path) -> None:
    plugin_dir = make_plugin_dir(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    listed = run_cli("backends", env=env)
    assert listed.stdout.split() == sorted(["local", "openai", "shout"])
    result = run_cli("ask", "--backend", "shout", "-o", "volume", "3", "hello there", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HELLO THERE!"
    bad = run_cli("ask", "--backend", "shout", "-o", "volume", "99", "x", env=env)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr)
    assert "volume must be <= 11" in bad.stderr


def test_listing_backends_imports_none_of_them() -> None:
    code, found, out = modules_loaded_by(
        ["backends"], ["chatterm_openai", "chatterm_local", "httpx", "torch"]
    )
    assert (code, found, out.split()) == (0, [], ["local", "openai"])


def test_builtin_table_is_what_pyproject_registers() -> None:
    """Built-in backends load without reading metadata (chatterm.plugins.BUILTIN): the table
    must name exactly the entry points the package declares, and the installed ones agree."""
    import tomllib
    from importlib.metadata import entry_points

    from chatterm.plugins import BUILTIN, GROUP

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"][GROUP]
    assert declared == BUILTIN
    installed = {ep.name: ep.value for ep in entry_points(group=GROUP) if ep.name in BUILTIN}
    assert all(installed[name] == value for name, value in BUILTIN.items() if name in installed)


def test_asking_a_builtin_backend_reads_no_plugin_metadata(openai_server) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    code, found, out = modules_loaded_by(["ask", "-n", "-m", "echo", "hi"], ["importlib.metadata"], env)
    assert (code, found, out) == (0, [], "hi\n")


def test_an_unknown_backend_lists_builtins_and_plugins(tmp_path: Path) -> None:
    plugin_dir = make_plugin_dir(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("ask", "--backend", "nope", "x", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "unknown backend 'nope' (installed: local, openai, shout)" in result.stderr
