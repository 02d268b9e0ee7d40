"""A writer killed mid-write (SIGKILL, power loss) leaves its temporary file beside the target;
the next atomic write of that file removes it, and never touches a live writer's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import torch

from asr.checkpoint import FORMAT, VERSION, atomic_save, safe_load
from asr.fileio import atomic_write_text

KILLED_WRITER = """
import os, sys
from pathlib import Path
from asr.fileio import temp_file_beside
fd, tmp = temp_file_beside(Path(sys.argv[1]))
os.write(fd, b"half a checkpoint")
os.kill(os.getpid(), 9)
"""


def _temps(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_leftovers_of_killed_writers_are_removed(tmp_path):
    target = tmp_path / "last.pt"
    r = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert len(_temps(tmp_path)) == 1 and not target.exists()
    live = tmp_path / f".last.pt.{os.getpid()}.inflight.tmp"  # a live writer's (this process)
    live.write_bytes(b"")
    atomic_save({"format": FORMAT, "version": VERSION, "w": torch.ones(2)}, target)
    assert _temps(tmp_path) == [live.name]
    assert torch.equal(safe_load(target)["w"], torch.ones(2))

    (tmp_path / ".hyp.txt.999999999.x.tmp").write_text("partial")  # no such process
    atomic_write_text(tmp_path / "hyp.txt", "u1 AB\n")
    assert _temps(tmp_path) == [live.name]
