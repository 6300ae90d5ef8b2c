#!/usr/bin/env bash
# Installs the Redis client libraries that tests/client_compat.rs runs, at the versions
# pinned in the project, into the project's own folders: redis-py in a virtual environment
# (tests/clients/python/.venv, from requirements.txt) and node-redis and ioredis
# (tests/clients/node/node_modules, `npm ci` from package-lock.json). Quick when they are
# already installed: each folder keeps a stamp of the pin file it was installed from.
# python3 with venv, node and npm come from apt-get when missing and running as root on
# Debian; otherwise this says what to run and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python_dir=tests/clients/python
node_dir=tests/clients/node
venv=$python_dir/.venv

# The stamp of a pin file: its hash and the interpreter it was installed for.
stamp() { echo "$(sha256sum "$1" | cut -d' ' -f1) $2"; }

packages=()
if ! command -v python3 >/dev/null 2>&1; then
  packages+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ ${#packages[@]} -gt 0 ]; then
  echo "missing for the client compatibility tests: ${packages[*]}" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${packages[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${packages[@]}" >/dev/null
  else
    echo "install them with: sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
fi

python_stamp=$(stamp $python_dir/requirements.txt "$(python3 --version 2>&1)")
if [ "$(cat $venv/.installed 2>/dev/null)" != "$python_stamp" ] \
  || ! $venv/bin/python -c 'import redis' >/dev/null 2>&1; then
  echo "installing redis-py ($python_dir/requirements.txt) into $venv" >&2
  rm -rf $venv
  python3 -m venv $venv
  $venv/bin/python -m pip install -q --disable-pip-version-check -r $python_dir/requirements.txt
  echo "$python_stamp" >$venv/.installed
fi

node_stamp=$(stamp $node_dir/package-lock.json "node $(node --version)")
if [ "$(cat $node_dir/node_modules/.installed 2>/dev/null)" != "$node_stamp" ]; then
  echo "installing node-redis and ioredis ($node_dir/package-lock.json) with npm ci" >&2
  (cd $node_dir && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$node_stamp" >$node_dir/node_modules/.installed
fi
