#!/usr/bin/env bash
# Create .venv and install evstream with the CPU build of torch (see README "Install").
# torch==2.13.0 first (a plain `torch` requirement would pull a 6 GB CUDA build), then spikingjelly
# without its dependencies (they would pull CUDA torch + torchvision), then the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q --no-deps spikingjelly==2.0.0
python -m pip install -q -e '.[test]'
# The GUI's system libraries (Qt's X11 plugin; Debian names): a note with the apt-get line when some are missing
python -m app.qtcheck || true
