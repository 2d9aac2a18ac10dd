#!/usr/bin/env bash
# Regenerates the bundled spoken example (whisperlens/data/example.flac) with flite.
set -euo pipefail
cd "$(dirname "$0")/.."
text="Hot ones is the show with hot questions and even hotter wings. The quick brown fox jumps over the lazy dog."
tmp=$(mktemp --suffix .wav)
# kal16 is a diphone voice: unlike slt, awb and rms it adds no random noise, so the file is reproducible.
flite -voice kal16 -t "$text" -o "$tmp"
.venv/bin/python - "$tmp" <<'PY'
import sys, soundfile
from whisperlens.audio import load_audio
soundfile.write("whisperlens/data/example.flac", load_audio(sys.argv[1]), 16000, subtype="PCM_16")
PY
echo "$text" > whisperlens/data/example.txt
rm -f "$tmp"
