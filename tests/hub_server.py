"""A loopback Hugging Face Hub for tests: serves model folders the way huggingface_hub expects.

Point ``HF_ENDPOINT`` at :attr:`HubServer.endpoint` and huggingface_hub (``model_info``,
``hf_hub_download``, ``snapshot_download``) talks to it exactly as to huggingface.co:

* ``GET /api/models/ORG/NAME[/revision/REV]`` answers the repo info with its commit and the
  files (``siblings`` with sizes, ``lfs`` for weights);
* ``HEAD|GET /ORG/NAME/resolve/REV/FILE`` answers the file with ``X-Repo-Commit``, ``ETag``
  (its sha256) and ``Content-Length``, honours ``Range: bytes=N-`` (206, for resumed downloads),
  and 404s with ``X-Error-Code: RepoNotFound`` / ``EntryNotFound``.

Bodies larger than one chunk are sent :attr:`HubServer.chunk` bytes at a time with
:attr:`HubServer.delay_s` between chunks, so a test can watch a download progress and cancel
it. Every request is recorded (method, path, Range header) for assertions on resumes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "5eed" + "1" * 36


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    range: str | None


@dataclass(frozen=True, slots=True)
class _File:
    data: bytes
    sha256: str
    lfs: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        hub = self.server.hub
        path = self.path.split("?", 1)[0]
        hub.seen.append(Seen(self.command, path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._repo_info("/".join(parts[2:4]))
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            self._file("/".join(parts[:2]), "/".join(parts[4:]), body)
            return
        self._error(404, "RepoNotFound")

    def _repo_info(self, repo_id: str) -> None:
        files = self.server.hub.repos.get(repo_id)
        if files is None:
            self._error(404, "RepoNotFound")
            return
        siblings = []
        for name, item in sorted(files.items()):
            entry: dict[str, Any] = {"rfilename": name, "size": len(item.data)}
            if item.lfs:
                entry["lfs"] = {"size": len(item.data), "sha256": item.sha256, "pointerSize": 134}
            siblings.append(entry)
        payload = json.dumps(
            {"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
             "siblings": siblings}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _file(self, repo_id: str, name: str, body: bool) -> None:
        hub = self.server.hub
        files = hub.repos.get(repo_id)
        if files is None:
            self._error(404, "RepoNotFound")
            return
        item = files.get(name)
        if item is None:
            self._error(404, "EntryNotFound")
            return
        start = 0
        asked = self.headers.get("Range")
        if asked and asked.startswith("bytes=") and asked.endswith("-"):
            start = min(int(asked[6:-1]), len(item.data))
        data = item.data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{item.sha256}"')
        if item.lfs:
            self.send_header("X-Linked-Etag", f'"{item.sha256}"')
            self.send_header("X-Linked-Size", str(len(item.data)))
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(item.data) - 1}/{len(item.data)}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not body:
            return
        try:
            for offset in range(0, len(data), hub.chunk):
                if offset and hub.delay_s:
                    time.sleep(hub.delay_s)
                self.wfile.write(data[offset : offset + hub.chunk])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled download): nothing to finish

    def _error(self, status: int, code: str) -> None:
        payload = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubServer


class HubServer:
    """The loopback hub; ``add_repo`` publishes a folder under a repo id."""

    def __init__(self, chunk: int = 64 * 1024, delay_s: float = 0.0) -> None:
        self.repos: dict[str, dict[str, _File]] = {}
        self.seen: list[Seen] = []
        self.chunk = chunk
        self.delay_s = delay_s
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(self, repo_id: str, folder: Path) -> None:
        files = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                files[path.relative_to(folder).as_posix()] = _File(
                    data, hashlib.sha256(data).hexdigest(), path.suffix == ".safetensors"
                )
        self.repos[repo_id] = files

    def ranges_for(self, name: str) -> list[str | None]:
        return [s.range for s in self.seen if s.method == "GET" and s.path.endswith("/" + name)]

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def use_hub(monkeypatch: Any, server: HubServer, chunk_size: int = 16 * 1024) -> None:
    """Point this process's huggingface_hub at ``server`` (as HF_ENDPOINT would at start-up).

    huggingface_hub read ``HF_HUB_OFFLINE=1`` (the suite's default) when it was imported, and
    reads 10 MB per report; smaller reads make the tiny model's 0.4 MB of weights behave like
    a real model's: many progress reports, room to cancel midway.
    """
    from chatterm_local.hub import forget_probes
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", chunk_size)
    forget_probes()
