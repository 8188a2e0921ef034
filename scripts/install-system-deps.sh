#!/usr/bin/env bash
# System packages the test suite needs, from Debian's archive (idempotent; `make install` runs it):
#   chromium   the headless browser of the web-UI tests (driven by the playwright Python package through
#              executable_path=/usr/bin/chromium; `playwright install` is never needed)
#   postgresql the server binaries (/usr/lib/postgresql/<version>/bin) the deploy tests run as a throw-away
#              catalog database (initdb + pg_ctl on 127.0.0.1); no system-wide cluster is created or started
# Not root, or not Debian/Ubuntu: prints what is missing and exits 0 (the tests that need them then skip).
set -euo pipefail

PACKAGES=(chromium postgresql)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: already installed (${PACKAGES[*]})"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system deps: SKIPPED, no apt-get here: install ${missing[*]} with your package manager" \
       "(the browser tests look for /usr/bin/chromium, the deploy cluster test for /usr/lib/postgresql/*/bin," \
       "and skip without them)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps: SKIPPED, not root: run 'sudo $0' (or: sudo apt-get install -y ${missing[*]});" \
       "the browser tests skip until /usr/bin/chromium exists," \
       "the deploy cluster test until postgresql is installed" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "system deps: installing ${missing[*]}"
apt-get update -qq
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # Tests start their own servers: tell postgresql-common not to create (and start) a `main` cluster.
  apt-get install -y -qq --no-install-recommends postgresql-common
  sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
test -x /usr/bin/chromium && /usr/bin/chromium --version 2>/dev/null || true
ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null || true
