#!/usr/bin/env bash
# Set up (or refresh) the project's environment in .venv: Python packages, plus Debian's
# Chromium for the HTML-report check when it can (root with apt-get). Safe to rerun; quick when
# everything is there. Needs no root and no network but the Python package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Let pip choose torch: on this project's machines that is a CUDA build from the local disk,
# which PyPI's torchaudio wheels need (they do not work with the CPU-only 2.13.0+cpu build).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,vad]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, torchaudio, soundfile, flashlight.lib.text" \
    || { echo "setup: the Python environment is incomplete" >&2; exit 1; }
# Chromium serves one test only (the HTML report renders in a browser); the main job needs none of
# it. Where it cannot be installed here, setup says so in one line and records why in
# .venv/chromium-skipped.txt, and that test is reported as skipped with the reason; without that
# record a missing Chromium fails the test (the CI machine installs it).
skipped=.venv/chromium-skipped.txt
if command -v chromium >/dev/null 2>&1; then
    rm -f "$skipped"
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    why="Chromium is not installed and setup cannot install it ($( [ "$(id -u)" != 0 ] \
        && echo "not root" || echo "no apt-get")); install it (e.g. apt-get install chromium) and rerun scripts/setup.sh"
    echo "$why" > "$skipped"
    echo "setup: skipping Chromium (only the HTML-report test needs it; it will be reported as skipped)" >&2
elif (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; then
    rm -f "$skipped"
else
    echo "setup: could not install Chromium with apt-get (the HTML-report test will fail)" >&2
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'))"
