#!/usr/bin/env bash
# Creates the virtual environment the README's commands use, on a fresh machine, idempotently.
set -euo pipefail
venv="${1:-.venv}"

# open3d (point clouds) needs libusb at import time.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; }
    else
        echo "warning: libusb-1.0-0 is missing; install it (apt-get install libusb-1.0-0) to read .pcd point clouds" >&2
    fi
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# Without a GPU take the CPU build of torch that lies on this machine's disk; with one, the
# dependency range of pyproject.toml picks a CUDA build.
if ! "$venv/bin/python" -c "import torch" 2>/dev/null && ! command -v nvidia-smi >/dev/null; then
    "$venv/bin/python" -m pip install -q "torch==2.13.0"
fi
# setuptools explains editable installs at length on every install: keep the set-up output to what matters
PYTHONWARNINGS=ignore "$venv/bin/python" -m pip install -q -e ".[test,bench,view]"
touch "$venv/.installed"
