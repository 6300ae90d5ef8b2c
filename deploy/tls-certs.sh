#!/bin/sh
# Makes a throwaway CA and certificates for the docker-compose `tls` profile in DIR
# (default /certs): ca.crt, proxy.{crt,key} (names proxy-tls, localhost, 127.0.0.1),
# redis.{crt,key} (name redis-tls) and client.{crt,key} (for mutual TLS). Does nothing
# when ca.crt is already there. For trying TLS out, not for production: use your own PKI.
set -eu
dir=${1:-/certs}
[ -f "$dir/ca.crt" ] && exit 0
mkdir -p "$dir" && cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=proxyredis demo CA" \
  -keyout ca.key -out ca.crt
cert() { # name CN subjectAltName
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}
cert proxy proxy-tls "DNS:proxy-tls,DNS:localhost,IP:127.0.0.1"
cert redis redis-tls "DNS:redis-tls"
cert client client "DNS:client"
# The proxy's container user and redis's must read the keys.
chmod 644 ./*.key ./*.crt
