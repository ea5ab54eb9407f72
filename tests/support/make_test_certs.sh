#!/usr/bin/env bash
# Makes throwaway certificates for the TLS tests, with Debian's openssl, into
# DIR (created). Every test that needs certificates (C++, Python, Node, Go)
# calls this one script, so they all test the same kind of files.
#
#   make_test_certs.sh DIR
#
# DIR/ca.{crt,key}          CA "tblog-test-ca": signs the server certificates
# DIR/server.{crt,key}      CN tblogd, SAN localhost, 127.0.0.1, ::1 (signed by ca)
# DIR/ca2.{crt,key}         a second CA, for rotation
# DIR/server2.{crt,key}     CN tblogd-rotated, same SANs (signed by ca2)
# DIR/client-ca.{crt,key}   CA that signs client certificates (mTLS)
# DIR/client.{crt,key}      CN trainer-1 (signed by client-ca)
# DIR/rogue-client.{crt,key} CN rogue (self-signed: not signed by client-ca)
# EC P-256 keys: fast to make (a test makes them in well under a second).
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
ca() {  # name CN
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -sha256 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
}
leaf() {  # name CN issuer extensions
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 -sha256 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
server_ext='subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth'
client_ext='extendedKeyUsage=clientAuth'

ca ca tblog-test-ca
ca ca2 tblog-test-ca-2
ca client-ca tblog-test-client-ca
leaf server tblogd ca "$server_ext"
leaf server2 tblogd-rotated ca2 "$server_ext"
leaf client trainer-1 client-ca "$client_ext"
key rogue-client
openssl req -x509 -new -key rogue-client.key -subj "/CN=rogue" -days 2 -sha256 \
  -out rogue-client.crt 2>/dev/null
rm -f ./*.srl
