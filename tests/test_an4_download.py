"""recipes/an4/run.sh downloads AN4 when no --corpus is given: a miniature an4_sphere.tar.gz in
CMU's layout, served from 127.0.0.1; resume, digest record, test part, reruns, no network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from asr.manifest import read_manifest
from test_an4_prep import TEST_SPEAKERS, TRAIN_SPEAKERS, make_fake_an4

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "recipes" / "an4" / "run.sh"
BIN = Path(sys.executable).parent
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _cmu_archive(tmp: Path) -> bytes:
    """an4_sphere.tar.gz as CMU lays it out: an4/{LICENSE,README,etc/*,wav/an4_clstk,an4test_clstk}
    with NIST SPHERE audio."""
    base = tmp / "src"
    root, _, _ = make_fake_an4(base, "sphere", with_test=True)
    (root / "LICENSE").write_text("AN4 licence terms (test copy)\n")
    (root / "README").write_text("AN4 (test copy)\n")
    for part, trans in (("train", "an4_train"), ("test", "an4_test")):
        ids = [line.rsplit("(", 1)[1].rstrip(")") for line in
               (root / "etc" / f"{trans}.transcription").read_text().split("\n") if line]
        (root / "etc" / f"{trans}.fileids").write_text(
            "".join(f"{'an4_clstk' if part == 'train' else 'an4test_clstk'}/{i.split('-')[1]}/{i}\n"
                    for i in ids))
    for name in ("an4.dic", "an4.phone", "an4.filler", "an4.ug.lm"):
        (root / "etc" / name).write_text("x\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root, arcname="an4")
    shutil.rmtree(base)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``body`` at /an4_sphere.tar.gz with Range support; ``drop`` next GETs are cut short."""

    body = b""
    drop = 0
    log: list[tuple[str | None, int]] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path != "/an4_sphere.tar.gz":
            self.send_error(404)
            return
        cls, start = type(self), 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(cls.body) - 1}/{len(cls.body)}")
        else:
            self.send_response(200)
        cls.log.append((rng, 206 if rng else 200))
        chunk = cls.body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if cls.drop > 0:
            cls.drop -= 1
            self.wfile.write(chunk[: max(1, len(chunk) // 3)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    _Handler.body, _Handler.drop, _Handler.log = _cmu_archive(tmp_path), 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/an4_sphere.tar.gz"
    httpd.shutdown()


def _recipe(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUN), "--stop-stage", "0", "--exp-dir", str(tmp_path / "exp"),
                           "--data-dir", str(tmp_path / "data"), *args], capture_output=True,
                          text=True, timeout=300, env=env or NO_PROXY_ENV)


def test_download_resumes_prepares_the_test_part_and_a_rerun_downloads_nothing(server, tmp_path):
    _Handler.drop = 4  # more cuts than one run retries: the first run stops, keeping the .part
    first = _recipe(tmp_path, "--download-url", server)
    assert first.returncode != 0
    assert first.stderr.strip().splitlines()[-1].endswith("rerun to resume)"
                                                          ". Connect to the internet and rerun "
                                                          "(a partial download resumes), or use a "
                                                          "local copy: recipes/an4/run.sh --corpus "
                                                          "DIR (asr prepare an4 --corpus DIR)")
    part = tmp_path / "data" / "download" / "an4_sphere.tar.gz.part"
    have = part.stat().st_size
    assert 0 < have < len(_Handler.body)

    second = _recipe(tmp_path, "--download-url", server)
    assert second.returncode == 0, second.stderr
    assert _Handler.log[4] == (f"bytes={have}-", 206)  # resumed where the first run stopped
    assert len(_Handler.log) == 5
    archive = tmp_path / "data" / "download" / "an4_sphere.tar.gz"
    assert archive.read_bytes() == _Handler.body
    record = json.loads((archive.parent / "an4_sphere.tar.gz.digest.json").read_text())
    assert record["sha256"] == hashlib.sha256(_Handler.body).hexdigest()
    assert record["bytes"] == len(_Handler.body) and record["url"] == server

    manifests = {s: read_manifest(tmp_path / "data" / f"an4_{s}.jsonl") for s in ("train", "dev", "test")}
    assert {u.speaker for u in manifests["test"]} == set(TEST_SPEAKERS)
    assert len(manifests["test"]) == 2 * len(TEST_SPEAKERS)
    assert all(u.audio_path.endswith(".sph") and u.duration > 0 for m in manifests.values() for u in m)
    spk = {s: {u.speaker for u in m} for s, m in manifests.items()}
    assert spk["train"] | spk["dev"] == set(TRAIN_SPEAKERS) and not spk["train"] & spk["dev"]

    third = _recipe(tmp_path, "--download-url", server)
    assert third.returncode == 0, third.stderr
    assert len(_Handler.log) == 5  # nothing downloaded again


def test_an_archive_that_changed_since_the_first_download_is_refused(server, tmp_path):
    assert _recipe(tmp_path, "--download-url", server).returncode == 0
    download = tmp_path / "data" / "download"
    for f in ("an4_sphere.tar.gz", ".an4_sphere.tar.gz.complete"):
        (download / f).unlink()  # the user removed the archive; the server now has another one
    _Handler.body = _Handler.body[:-10] + b"0123456789"
    proc = _recipe(tmp_path, "--download-url", server)
    assert proc.returncode != 0
    line, = proc.stderr.strip().splitlines()
    assert "checksum mismatch" in line and "an4_sphere.tar.gz.digest.json" in line
    assert "remove that file to accept the new archive" in line
    assert not (download / "an4_sphere.tar.gz").exists()


def test_a_pinned_digest_is_checked(server, tmp_path):
    proc = subprocess.run([str(BIN / "asr"), "prepare", "an4", "--download", "--corpus",
                           str(tmp_path / "dl"), "--out", str(tmp_path / "m"), "--url", server,
                           "--sha256", "0" * 64], capture_output=True, text=True, env=NO_PROXY_ENV)
    assert proc.returncode != 0
    line, = proc.stderr.strip().splitlines()
    assert "checksum mismatch" in line and f"expected {'0' * 64}" in line
    assert not (tmp_path / "m" / "an4_train.jsonl").exists()


def test_fresh_clone_without_shared_or_network_fails_in_one_line(tmp_path):
    """The plain command on a copy of the checkout with no ../shared beside it; every address
    goes through an unreachable proxy, as on a machine without network."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "recipes", clone / "recipes",
                    ignore=shutil.ignore_patterns("exp", "data", "__pycache__"))
    assert not (clone.parent / "shared").exists()
    env = {**NO_PROXY_ENV, "PATH": f"{BIN}:{os.environ['PATH']}",
           "http_proxy": "http://127.0.0.1:1", "https_proxy": "http://127.0.0.1:1"}
    proc = subprocess.run(["bash", "recipes/an4/run.sh"], cwd=clone, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode != 0
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("asr: error: could not download AN4 (")
    assert "Connect to the internet and rerun" in line and "recipes/an4/run.sh --corpus DIR" in line
    assert "speech.cs.cmu.edu" in line and "github.com/cmusphinx/an4" in line
