#!/usr/bin/env bash
# Installs what the test suite needs beyond Python: Debian's Chromium (browser tests drive it
# through Playwright; no browser is downloaded) and the npm test tools in package.json.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to apt-get install $*" >&2
    exit 1
  fi
  echo "install-system-deps: apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules ] || \
   [ ! -x node_modules/.bin/prism ] || [ ! -f node_modules/axe-core/axe.min.js ]; then
  echo "install-system-deps: npm install (prism, axe-core)"
  npm install --no-fund --no-audit --ignore-scripts --loglevel=error
  touch node_modules
fi
echo "install-system-deps: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), prism $(node_modules/.bin/prism --version 2>/dev/null)"
