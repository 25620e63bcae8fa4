#!/usr/bin/env bash
# Installs the independent SCIM 2.0 servers the end-to-end tests of tests/tests/generic_servers.rs
# run against, each into its own cached virtual environment (created only when missing), and prints
# the environment variables the tests read. Usage:
#   eval "$(tests/servers/install.sh)"   # then: cargo nextest run -p scimsync-tests
# The versions are pinned: canaille 0.3.6 needs scim2-models 0.9.0, scim2-server 0.8.3 needs 0.12.3,
# which is why they live in separate environments.
set -euo pipefail
python="${PYTHON:-python3}"
root="${XDG_CACHE_HOME:-$HOME/.cache}/scimsync/venvs"
mkdir -p "$root"

# make_venv NAME PACKAGE... : the venv at $root/NAME with exactly these pins, made once.
make_venv() {
  local name="$1"; shift
  local dir="$root/$name"
  local stamp="$dir/.scimsync-pins"
  local want="$*"
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  printf '%s' "$want" > "$stamp"
}

make_venv scim2-server-0.8.3 "scim2-server==0.8.3" "scim2-models==0.12.3"
make_venv canaille-0.3.6 "canaille[oidc]==0.3.6" "scim2-models==0.9.0" "pytest-iam==0.3.0"

echo "export SCIMSYNC_SCIM2_SERVER=$root/scim2-server-0.8.3/bin/scim2-server"
echo "export SCIMSYNC_CANAILLE_PYTHON=$root/canaille-0.3.6/bin/python"
