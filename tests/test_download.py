"""data_prep.download: resumable HTTP download with checksums, and path-safe extraction."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from asr.errors import UserError
from data_prep.download import download, download_and_extract, extract


def _targz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# Incompressible payload so the archive is big enough to cut in half meaningfully.
PAYLOAD = _targz({"corpus/a.txt": b"hello\n", "corpus/sub/b.bin": bytes(range(256)) * 400})
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``PAYLOAD`` with Range support; can drop the connection halfway or ignore Range."""

    drop_first = 0  # how many next GETs to cut off after half the body
    ignore_range = False
    log: list[tuple[str | None, int]] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        if not self.path.endswith(".tar.gz"):
            self.send_error(404)
            return
        body, start = PAYLOAD, 0
        rng = self.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                type(self).log.append((rng, 416))
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            code = 206
        else:
            self.send_response(200)
            code = 200
        type(self).log.append((rng, code))
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if type(self).drop_first > 0:
            type(self).drop_first -= 1
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    _Handler.drop_first, _Handler.ignore_range, _Handler.log = 0, False, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/corpus.tar.gz"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_rerun_does_nothing(server, tmp_path):
    dest = download(server, tmp_path / "corpus.tar.gz", sha256=SHA, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert (tmp_path / ".corpus.tar.gz.complete").is_file()
    assert not (tmp_path / "corpus.tar.gz.part").exists()
    n = len(_Handler.log)
    assert download(server, dest, sha256=SHA, timeout=5) == dest
    assert len(_Handler.log) == n  # no request at all


def test_resumes_existing_part_file_with_range(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    half = len(PAYLOAD) // 2
    (tmp_path / "corpus.tar.gz.part").write_bytes(PAYLOAD[:half])
    download(server, dest, sha256=SHA, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.log == [(f"bytes={half}-", 206)]


def test_interrupted_download_keeps_part_and_rerun_resumes(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    _Handler.drop_first = 1
    with pytest.raises(UserError, match="rerun to resume"):
        download(server, dest, sha256=SHA, retries=0, timeout=5)
    part = tmp_path / "corpus.tar.gz.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not dest.exists()
    download(server, dest, sha256=SHA, retries=0, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.log[-1] == (f"bytes={len(PAYLOAD) // 2}-", 206)


def test_interruption_is_retried_within_one_call(server, tmp_path):
    _Handler.drop_first = 2
    download(server, tmp_path / "c.tgz", md5=hashlib.md5(PAYLOAD).hexdigest(), retries=3, timeout=5)
    assert (tmp_path / "c.tgz").read_bytes() == PAYLOAD
    assert [code for _, code in _Handler.log] == [200, 206, 206]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    _Handler.ignore_range = True
    (tmp_path / "c.tgz.part").write_bytes(b"garbage that must not be kept")
    download(server, tmp_path / "c.tgz", sha256=SHA, timeout=5)
    assert (tmp_path / "c.tgz").read_bytes() == PAYLOAD


def test_whole_part_file_is_accepted_on_416(server, tmp_path):
    (tmp_path / "c.tgz.part").write_bytes(PAYLOAD)
    download(server, tmp_path / "c.tgz", sha256=SHA, timeout=5)
    assert (tmp_path / "c.tgz").read_bytes() == PAYLOAD


def test_wrong_checksum_fails_clearly_and_removes_file(server, tmp_path):
    with pytest.raises(UserError, match=r"checksum mismatch for .*c\.tgz\.part.*sha256 expected 0+, got " + SHA):
        download(server, tmp_path / "c.tgz", sha256="0" * 64, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_http_and_connection_errors_are_user_errors(server, tmp_path):
    missing = server.replace("corpus.tar.gz", "missing.zip")
    with pytest.raises(UserError, match=f"download of {missing} failed: HTTP 404"):
        download(missing, tmp_path / "x", timeout=5)
    with pytest.raises(UserError, match="download of http://127.0.0.1:1/x failed: cannot reach 127.0.0.1 .*refused"):
        download("http://127.0.0.1:1/x", tmp_path / "x", retries=0, timeout=2)


def test_download_and_extract_then_rerun(server, tmp_path):
    target = download_and_extract(server, tmp_path, sha256=SHA)
    assert (target / "corpus" / "a.txt").read_text() == "hello\n"
    (target / "corpus" / "a.txt").unlink()
    download_and_extract(server, tmp_path, sha256=SHA)  # marker: nothing re-extracted
    assert not (target / "corpus" / "a.txt").exists()


# ------------------------------------------------------------------------------------- extract


def _tar_with(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("good.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.size = 1
    return m


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, target
    return m


@pytest.mark.parametrize(
    "member, bad",
    [
        (_file("../evil"), "../evil"),
        (_file("sub/../../evil"), "sub/../../evil"),
        (_file("/tmp/abs_evil_asr_test"), "/tmp/abs_evil_asr_test"),
        (_link("lnk", "../evil"), "lnk"),
        (_link("lnk", "/etc"), "lnk"),
        (_link("hard", "../evil", tarfile.LNKTYPE), "hard"),
    ],
)
def test_extract_refuses_members_outside_target(tmp_path, member, bad):
    archive = _tar_with(tmp_path, member)
    target = tmp_path / "out" / "target"
    with pytest.raises(UserError, match=f"refusing member '{bad}'"):
        extract(archive, target)
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/abs_evil_asr_test").exists()
    assert list(target.iterdir()) == []  # checked before anything is written


def test_extract_refuses_link_chain_escape(tmp_path):
    # Lexically inside, but b -> "." makes "b/../escape" the target's parent at write time.
    archive = _tar_with(tmp_path, _link("b", "."), _link("a", "b/../escape"), _file("a/evil"))
    target = tmp_path / "target"
    with pytest.raises(UserError, match="cannot extract"):
        extract(archive, target)
    assert not (tmp_path / "escape").exists()


def test_extract_zip_refuses_parent_path(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr("../evil", "x")
    with pytest.raises(UserError, match="refusing member '../evil'"):
        extract(archive, tmp_path / "target")
    assert not (tmp_path / "evil").exists()


def test_extract_zip_and_tar_bz2(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("d/x.txt", "zip")
    assert (extract(z, tmp_path / "z") / "d" / "x.txt").read_text() == "zip"
    b = tmp_path / "a.tar.bz2"
    with tarfile.open(b, "w:bz2") as tar:
        tar.add(z, arcname="inner/a.zip")
    assert (extract(b, tmp_path / "b") / "inner" / "a.zip").read_bytes() == z.read_bytes()
    with pytest.raises(UserError, match="not a tar or zip archive"):
        (tmp_path / "plain.txt").write_text("no")
        extract(tmp_path / "plain.txt", tmp_path / "p")


def test_file_placed_by_hand_is_verified_not_fetched(server, tmp_path):
    dest = tmp_path / "c.tgz"
    dest.write_bytes(PAYLOAD)
    assert download(server, dest, sha256=SHA, timeout=5) == dest and _Handler.log == []
    dest.write_bytes(b"corrupt")  # marker exists, but a new pin makes it re-check
    with pytest.raises(UserError, match="checksum mismatch"):
        download(server, dest, md5=hashlib.md5(PAYLOAD).hexdigest(), timeout=5)
    assert not dest.exists()
