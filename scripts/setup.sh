#!/usr/bin/env bash
# Installs what ResNet Explorer needs on a fresh Debian/Ubuntu machine, idempotently:
#   bash scripts/setup.sh          runtime: graphviz (SVG/PNG export) + .venv with requirements.txt
#   bash scripts/setup.sh dev      also chromium (browser tests) + requirements-dev.txt + the test references
#                                  (requirements-refs.txt, --no-deps: torchvision's and timm's model code)
# Set PYTHON to choose the interpreter (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-runtime}

apt_packages=(graphviz fonts-noto-cjk)  # the CJK font: Chinese text in the graphs Graphviz draws on the server
if [ "$mode" = dev ] && ! command -v npm >/dev/null 2>&1; then
  apt_packages+=(npm)  # axe-core for the accessibility tests comes from npm
fi
if [ "$mode" = dev ]; then
  apt_packages+=(chromium fonts-dejavu-core)
  apt_packages+=(postgresql nginx)  # the classroom tests: a throwaway PostgreSQL cluster, nginx before replicas
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; } >/tmp/resnet-explorer-apt.log 2>&1; then
    if [ "$mode" = dev ]; then
      echo "setup: apt-get failed (see /tmp/resnet-explorer-apt.log); the browser tests need chromium" >&2
      exit 1
    fi
    echo "setup: could not install graphviz (or the CJK font); the app works, but SVG/PNG export of graphs will say it is unavailable" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
requirements=requirements.txt
if [ "$mode" = dev ]; then requirements=requirements-dev.txt; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
if [ "$mode" = dev ]; then
  # axe-core, the accessibility engine the browser tests run in each page (tests/e2e/test_a11y.py), from npm
  if [ ! -f .cache/npm/node_modules/axe-core/axe.min.js ]; then
    npm install --prefix .cache/npm --no-save --no-audit --no-fund --silent axe-core@4.14.1 >/dev/null
  fi
  # test references (torchvision's and timm's model code), without their dependencies: see requirements-refs.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-refs.txt
fi
