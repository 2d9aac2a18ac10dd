#!/usr/bin/env bash
# Times the README's first command on a fresh clone, with an empty model cache and no corpus,
# so the corpus is built and the weights converted as on a new machine (Debian packages that
# are already installed are not reinstalled). Prints each study's time and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
git clone -q . "$work/whisperlens"
cd "$work/whisperlens"
export WHISPERLENS_CORPUS="$work/corpus" WHISPERLENS_CACHE="$work/cache"
start=$(date +%s)
bash scripts/setup.sh > "$work/setup.log" 2>&1
setup_done=$(date +%s)
.venv/bin/whisperlens run > "$work/run.log" 2>&1
end=$(date +%s)
grep -a -E '^   [a-z-]+: done in|^== corpus' "$work/run.log" || true
echo "set-up $((setup_done - start)) s, main job $((end - setup_done)) s, total $((end - start)) s (logs in $work)"
