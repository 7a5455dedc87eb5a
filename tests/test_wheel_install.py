"""The built wheel, not the editable checkout, installed into a fresh venv, works.

What pipx and ``uv tool install`` do is: build a wheel, make a venv, install the wheel and its
dependencies, run the console script. Here, without network:

* the wheel is built from a copy of the project's sources (so the checkout stays clean) with
  the setuptools already installed (``--no-build-isolation``);
* a fresh venv gets the wheel with ``--no-deps``;
* the dependencies come from the test's own venv through a folder of links to its installed
  packages, *except* chatterm itself (its editable hook and metadata are left out), so every
  chatterm module and entry point the fresh venv sees can only come from the wheel;
* the console script ``fresh/bin/chatterm`` runs from a folder outside the checkout, with no
  PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from cli_run import cli_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("chatterm", "backends", "themes", "pyproject.toml", "README.md")


def _build_wheel(work: Path) -> Path:
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist), str(src)],
        check=True, capture_output=True, timeout=300, env=_clean_env(),
    )
    (wheel,) = dist.glob("chatterm-*.whl")
    return wheel


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = cli_env(extra)
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    return env


def _is_chatterm(name: str) -> bool:
    """chatterm's own files in a site-packages: its packages, metadata and editable hook."""
    return name.lower().startswith(("chatterm", "__editable__"))


def _dependency_links(work: Path) -> Path:
    """A folder linking to every installed package of this venv except chatterm."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = work / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        if _is_chatterm(entry.name) or entry.suffix == ".pth":  # .pth: would not run from here
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


def _fresh_venv(work: Path, wheel: Path, deps: Path) -> Path:
    venv = work / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, timeout=300, env=_clean_env(),
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=_clean_env(),
    ).stdout.strip()
    # After the venv's own site-packages, so the wheel's files always come first.
    Path(purelib, "zz_test_dependencies.pth").write_text(f"{deps}\n")
    return venv


def test_the_wheel_installs_and_runs(tmp_path: Path, openai_server) -> None:  # type: ignore[no-untyped-def]
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("chatterm/cli/__init__.py", "chatterm/tui/app.py",
                     "chatterm_openai/backend.py", "chatterm_local/loader.py",
                     "chatterm_themes/chatterm-dusk.toml"):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    registered = zipfile.ZipFile(wheel).read(entry_points).decode()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {**project["scripts"], **project["entry-points"]["chatterm.backends"]}
    assert set(declared) == {"chatterm", "openai", "local"}
    for name, target in declared.items():
        assert f"{name} = {target}" in registered

    venv = _fresh_venv(tmp_path, wheel, _dependency_links(tmp_path))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    chatterm = str(venv / "bin" / "chatterm")

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([chatterm, *args], cwd=outside, env=_clean_env(extra),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "chatterm 0.1.0"
    backends = run("backends")
    assert backends.stdout.split() == ["local", "openai"], backends.stderr
    asked = run("ask", "--base-url", openai_server.base_url, "-m", "echo@wheel", "from the wheel")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "from the wheel"

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import chatterm, chatterm_openai, chatterm_local, chatterm_themes\n"
         "from importlib.metadata import distribution\n"
         "from chatterm.tui.themes import load_themes\n"
         "for m in (chatterm, chatterm_openai, chatterm_local, chatterm_themes):\n"
         "    print(m.__file__)\n"
         "print(distribution('chatterm')._path)\n"
         "print(' '.join(sorted(t.name for t in load_themes().themes)))\n"],
        cwd=outside, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )
    assert where.returncode == 0, where.stderr
    *files, dist_info, themes = where.stdout.splitlines()
    for path in (*files, dist_info):
        assert Path(path).resolve().is_relative_to(venv.resolve()), path
    assert "chatterm-dusk" in themes.split()
    assert str(ROOT) not in where.stdout
    assert os.access(chatterm, os.X_OK)
