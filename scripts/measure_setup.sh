#!/usr/bin/env bash
# Measures the set-up's time and size on a fresh clone (the README's figures come from here).
# Debian packages already on the machine are not reinstalled, so run it on a new machine for
# the apt share; the pip share is measured wherever it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
git clone -q . "$work/whisperlens"
cd "$work/whisperlens"
for mode in "" "--test"; do
  rm -rf .venv
  start=$(date +%s)
  bash scripts/setup.sh $mode >/dev/null 2>&1
  echo "setup.sh $mode: $(( $(date +%s) - start )) s, .venv $(du -sh .venv | cut -f1)"
done
cd "$repo"
rm -rf "$work"
# The Debian share: the packages setup.sh names (without their dependencies), as installed.
packages=$(sed -n '/^apt_packages=(/,/^)/p' scripts/setup.sh | grep -v '[()]')
mib=$(dpkg-query -W -f='${Installed-Size}\n' $packages | awk '{kib += $1} END {print int(kib / 1024)}')
echo "Debian packages named by setup.sh: $mib MB installed"
