"""scripts/setup.sh for a user who is not root and has no Chromium: installs, exits 0, and the
browser check is then reported as skipped with setup's reason (run for real, as user nobody)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
# what setup.sh and pip call; PATH holds only these, so no chromium (and no apt-get) is found
TOOLS = ["bash", "sh", "dirname", "id", "grep", "rm", "cat", "env", "uname"]


@pytest.fixture
def nobody_checkout():
    """A copy of the project owned by user nobody, with a venv whose dependencies come from
    this venv's site-packages (a .pth file), so that setup installs only the package itself."""
    if os.geteuid() != 0:  # already not root: run setup as ourselves
        uid = os.geteuid()
    else:
        uid = NOBODY
    work = Path(tempfile.mkdtemp(prefix="asr-setup-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        repo = work / "repo"
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
        for name in ("asr", "data_prep", "scripts", "tests"):
            shutil.copytree(ROOT / name, repo / name, ignore=skip)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, repo / name)
        # pip, like the other dependencies, comes from this venv through the .pth file
        subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(repo / ".venv")],
                       check=True)
        pth = next((repo / ".venv" / "lib").glob("python3*/site-packages")) / "_deps.pth"
        pth.write_text("\n".join(site.getsitepackages()) + "\n")
        bin_dir = work / "bin"
        bin_dir.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (bin_dir / tool).symlink_to(found)
        (work / "home").mkdir()
        for p in [work, *work.rglob("*")]:
            os.lchown(p, uid, uid)
        yield repo, uid, {**os.environ, "HOME": str(work / "home"), "PATH": str(bin_dir)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _base_python() -> str:
    """A Python 3 of this version that every user may run (pyenv's may sit under /root)."""
    for cand in (sys._base_executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        real = Path(cand).resolve()
        if real.is_file() and all(os.stat(p).st_mode & 0o001 for p in real.parents) \
                and os.stat(real).st_mode & 0o001:
            return str(real)
    pytest.fail(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that user nobody may run")


def _as(uid: int, argv: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    prefix = [] if uid == os.geteuid() else [
        shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return subprocess.run(prefix + argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_setup_without_root_or_chromium_installs_and_the_browser_check_is_skipped(nobody_checkout):
    repo, uid, env = nobody_checkout
    proc = _as(uid, ["bash", "scripts/setup.sh"], env, repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "setup: ok" in proc.stdout
    skip_lines = [line for line in proc.stderr.splitlines() if "Chromium" in line]
    assert skip_lines == ["setup: skipping Chromium (only the HTML-report test needs it; "
                          "it will be reported as skipped)"], proc.stderr
    reason = (repo / ".venv" / "chromium-skipped.txt").read_text()
    assert "not root" in reason or "no apt-get" in reason
    # the package is installed in the new venv, from the copy
    proc = _as(uid, [str(repo / ".venv/bin/python"), "-c",
                     "import asr, data_prep; print(asr.__file__)"], env, repo.parent / "home")
    assert proc.returncode == 0 and proc.stdout.startswith(str(repo / "asr")), proc.stderr
    # the suite reports the browser checks as skipped, with setup's reason
    proc = _as(uid, [".venv/bin/python", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                     "tests/test_scoring_report.py", "-k", "chromium"], env, repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 skipped" in proc.stdout and "not installed and setup cannot install it" in proc.stdout
    assert "passed" not in proc.stdout.splitlines()[-1]


def test_missing_chromium_without_setups_record_fails_the_browser_check(nobody_checkout):
    """No record from setup (e.g. the CI machine's install went wrong): the check fails, not skips."""
    repo, uid, env = nobody_checkout
    proc = _as(uid, [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     "tests/test_scoring_report.py", "-k", "renders"], env, repo)
    assert proc.returncode == 1, proc.stdout
    assert "recorded no reason to skip" in proc.stdout
