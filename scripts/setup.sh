#!/usr/bin/env bash
# Set up (or refresh) the project's environment in .venv: Python packages, plus Debian's
# Chromium for the HTML-report check. Safe to rerun; quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Let pip choose torch: on this project's machines that is a CUDA build from the local disk,
# which PyPI's torchaudio wheels need (they do not work with the CPU-only 2.13.0+cpu build).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, torchaudio, soundfile, flashlight.lib.text" \
    || { echo "setup: the Python environment is incomplete" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
            >/dev/null 2>&1 || echo "setup: could not install chromium (HTML report check)" >&2
    else
        echo "setup: install Chromium for the HTML report check (e.g. apt-get install chromium)" >&2
    fi
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'))"
