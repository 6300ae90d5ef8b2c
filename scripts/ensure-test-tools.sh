#!/usr/bin/env bash
# Makes sure what `make test` uses besides Redis is installed: curl and promtool (Debian
# package prometheus) for the HTTP compliance and metrics checks, openssl for the
# certificates of the TLS tests. Installs them with apt-get when running as root on
# Debian, else says what to run.
set -euo pipefail
packages=()
command -v curl >/dev/null 2>&1 || packages+=(curl)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
[ ${#packages[@]} -eq 0 ] && exit 0
echo "missing: ${packages[*]}" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${packages[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  exit 0
fi
echo "install them with: sudo apt-get install -y ${packages[*]}" >&2
exit 1
