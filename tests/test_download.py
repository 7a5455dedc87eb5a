"""Model downloads: progress events, cancel and resume, quiet pipes, bars on a terminal.

The hub is the loopback one in tests/hub_server.py serving the tiny model's files, so
huggingface_hub's own download code (HEAD, GET, Range resume, cache layout) does the work.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import cli_env, run_cli
from hub_server import HubServer, use_hub

from chatterm.download_progress import (
    CANCELLED,
    DONE,
    Download,
    DownloadCancelled,
    DownloadUpdate,
    describe,
    subscribe,
)

pytest.importorskip("huggingface_hub")

REPO = "chatterm-test/tiny"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_bytes_speed_and_eta() -> None:
    clock = Clock()
    heard: list[DownloadUpdate] = []
    unsubscribe = subscribe(heard.append)
    try:
        download = Download("org/m", [("config.json", 100), ("model.safetensors", 10_000)],
                            clock=clock)
        download.start()
        download.skip("config.json")
        download.begin_file("model.safetensors")
        bar = download.bar_class()(total=10_000, initial=2_000, desc="model.safetensors")
        for _ in range(4):
            clock.now += 1.0
            bar.update(1_000)
        state = download.snapshot()
        assert (state.files_done, state.files_total) == (1, 2)
        assert state.current_file == "model.safetensors"
        assert state.bytes_done == 100 + 2_000 + 4_000 and state.bytes_total == 10_100
        # The resumed 2,000 bytes were not transferred now: they do not count for the speed.
        assert state.speed == pytest.approx(1_000.0)
        assert state.eta == pytest.approx(4.0)
        assert describe(state) == "file 2/2 model.safetensors  6.1 kB / 10.1 kB  1.0 kB/s  ETA 00:04"
        download.cancel()
        with pytest.raises(DownloadCancelled):
            bar.update(1_000)
        download.finish(CANCELLED)
    finally:
        unsubscribe()
    assert heard[0].bytes_done == 0 and heard[-1].state == CANCELLED
    assert all(u.model == "org/m" for u in heard)


def test_transfer_reports_are_not_counted_twice() -> None:
    download = Download("org/m", [("model.safetensors", 100)])
    download.start()
    download.begin_file("model.safetensors")
    bar = download.bar_class()(total=100)
    bar.update(40)
    bar.update_transfer(40)  # what http_get and the Xet client report next to update()
    assert download.snapshot().bytes_done == 40
    download.finish(CANCELLED)


def test_listeners_are_throttled_but_hear_every_boundary() -> None:
    clock = Clock()
    heard: list[DownloadUpdate] = []
    unsubscribe = subscribe(heard.append)
    try:
        download = Download("org/m", [("a.json", 10_000)], clock=clock)
        download.start()
        download.begin_file("a.json")
        bar = download.bar_class()(total=10_000)
        for _ in range(100):
            bar.update(100)  # all at the same instant: one update, not a hundred
        download.end_file()
        download.finish(DONE)
    finally:
        unsubscribe()
    assert len(heard) <= 6
    assert heard[-1].state == DONE and heard[-1].bytes_done == heard[-1].bytes_total == 10_000


@pytest.fixture
def hub(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer(chunk=4096) as server:
        server.add_repo(REPO, tiny_model_dir)
        use_hub(monkeypatch, server)
        yield server


def _blob(cache: Path, name: str, source: Path) -> Path:
    digest = hashlib.sha256((source / name).read_bytes()).hexdigest()
    return cache / f"models--{REPO.replace('/', '--')}" / "blobs" / digest


def test_download_reports_every_file_and_fills_the_cache(
    hub: HubServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from chatterm_local.download import download_snapshot

    heard: list[DownloadUpdate] = []
    unsubscribe = subscribe(heard.append)
    try:
        folder = Path(download_snapshot(REPO, cache_dir=tmp_path, echo=False))
    finally:
        unsubscribe()
    names = sorted(p.name for p in tiny_model_dir.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in names:
        assert (folder / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    total = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    last = heard[-1]
    assert last.state == DONE and last.files_done == last.files_total == len(names)
    assert last.bytes_done == last.bytes_total == total
    done_counts = [u.bytes_done for u in heard]
    assert done_counts == sorted(done_counts)  # never goes backwards
    assert {u.current_file for u in heard} >= {"model.safetensors", "config.json"}

    # A second download finds everything cached: no file is fetched again.
    before = len([s for s in hub.seen if s.method == "GET" and "/resolve/" in s.path])
    download_snapshot(REPO, cache_dir=tmp_path, echo=False)
    after = len([s for s in hub.seen if s.method == "GET" and "/resolve/" in s.path])
    assert after == before


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes(
    hub: HubServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from chatterm_local.download import download_snapshot

    from chatterm.backend import ModelLoadError

    hub.delay_s = 0.01  # ~400 kB/s: the weights take about a second
    weights = tiny_model_dir / "model.safetensors"

    def cancel_midway(update: DownloadUpdate) -> None:
        if update.current_file == "model.safetensors" and update.bytes_done > 100_000:
            from chatterm.download_progress import cancel

            cancel(REPO)

    unsubscribe = subscribe(cancel_midway)
    try:
        with pytest.raises(ModelLoadError, match=r"cancelled at .* resumes it"):
            download_snapshot(REPO, cache_dir=tmp_path, echo=False)
    finally:
        unsubscribe()
    blob = _blob(tmp_path, "model.safetensors", tiny_model_dir)
    assert not blob.exists()
    partial = blob.with_name(blob.name + ".chatterm-partial")
    assert partial.exists()

    hub.delay_s = 0.0
    folder = Path(download_snapshot(REPO, cache_dir=tmp_path, echo=False))
    assert (folder / "model.safetensors").read_bytes() == weights.read_bytes()
    ranges = hub.ranges_for("model.safetensors")
    assert ranges[0] is None
    resumed_from = int(str(ranges[-1]).removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_from < weights.stat().st_size


def _cli_env(hub: HubServer) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": ""}


def test_ask_downloads_quietly_into_a_pipe_then_works_offline(hub: HubServer) -> None:
    args = ["ask", "--backend", "local", "-m", REPO, "--max-tokens", "3", "hi"]
    first = run_cli(*args, env=_cli_env(hub), timeout=180)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""  # no bars, no hub chatter into a pipe
    assert any(s.path.endswith("/model.safetensors") and s.method == "GET" for s in hub.seen)
    offline = run_cli(*args, env={"HF_HUB_OFFLINE": "1"}, timeout=180)
    assert offline.returncode == 0, offline.stderr


def test_ask_on_a_terminal_shows_the_hub_bars_on_stderr(hub: HubServer) -> None:
    controller, terminal = pty.openpty()
    # A real terminal has a size; tqdm draws nothing on a 0-column one.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        # Greedy: sampled, two tokens of the random model were now and then both ones that
        # print nothing (fresh-clone CI saw an empty reply once).
        [sys.executable, "-m", "chatterm", "ask", "--backend", "local", "-m", REPO,
         "-o", "temperature", "0", "--max-tokens", "2", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
        env=cli_env(_cli_env(hub)),
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        reader.join(timeout=10)
        os.close(controller)
    assert proc.returncode == 0, b"".join(chunks)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "model.safetensors" in shown and "100%" in shown
    assert out  # the reply still went to stdout


def test_new_core_modules_import_no_ui_and_no_model_stack() -> None:
    code = (
        "import sys, chatterm.download_progress, chatterm.cli.completion, chatterm.cli.doctor, "
        "chatterm_local.hub, chatterm_local.download\n"
        "print(sorted(m for m in ('textual', 'torch', 'transformers', 'huggingface_hub')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=cli_env())
    assert out.stdout.strip() == "[]"


def test_only_the_files_from_pretrained_reads_are_fetched() -> None:
    from chatterm_local.download import wanted_files

    listing = [("README.md", 1), (".gitattributes", 1), ("config.json", 1), ("merges.txt", 1),
               ("consolidated.safetensors", 9), ("model-00001-of-00002.safetensors", 5),
               ("model-00002-of-00002.safetensors", 4), ("model.safetensors.index.json", 1),
               ("pytorch_model.bin", 9), ("onnx/model.onnx", 9), ("tokenizer.model", 1),
               ("chat_template.jinja", 1), ("model.gguf", 9)]
    assert [n for n, _ in wanted_files(listing)] == [
        "config.json", "merges.txt", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "tokenizer.model", "chat_template.jinja",
    ]
    old_style = [("config.json", 1), ("pytorch_model.bin", 9), ("training_args.bin", 1)]
    assert [n for n, _ in wanted_files(old_style)] == ["config.json", "pytorch_model.bin"]
