#!/usr/bin/env bash
# Debian's Chromium for the JupyterLab browser test (tests/browser/). Playwright's Python
# package drives it through executable_path=/usr/bin/chromium: Playwright never downloads a
# browser here (that fails on this closed network). Idempotent: does nothing when present.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# a font with Latin glyphs and symbols (✓ ◐ ⚠ in the progress view), so screenshots are legible
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
  echo "browser-setup: $(chromium --version 2>/dev/null | head -1) already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "browser-setup: need root (or sudo) to install ${need[*]}; the browser test will skip" >&2
    exit 0
  fi
fi
echo "browser-setup: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt-get update only when the package lists are missing or older than a day
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  timeout 300 $SUDO apt-get update -qq
fi
timeout 900 $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
chromium --version 2>/dev/null | head -1
