#!/bin/sh
# Throwaway certificates for the OpenVPN end-to-end test (tests/e2e_openvpn.rs): a CA, one
# server certificate and one client certificate per name given, all EC prime256v1 (fast to
# make), valid for two days. Only for tests: the keys are unencrypted.
#
#   ovpn_pki.sh DIR CLIENT...      e.g. ovpn_pki.sh /tmp/pki c1 c2 c3
#
# Writes DIR/ca.crt, DIR/server.{crt,key}, DIR/CLIENT.{crt,key}. The server certificate
# has extendedKeyUsage serverAuth, so clients can check it with `remote-cert-tls server`;
# the client certificates have clientAuth (`remote-cert-tls client` on the server).
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 DIR CLIENT..." >&2
    exit 2
fi
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
umask 077

curve="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

# shellcheck disable=SC2086
openssl req -x509 $curve -keyout ca.key -out ca.crt -days 2 \
    -subj "/CN=snoopcast test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# sign NAME USAGE: NAME.key, NAME.crt with CN=NAME and extendedKeyUsage USAGE.
sign() {
    # shellcheck disable=SC2086
    openssl req $curve -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=$2" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

sign server serverAuth
for name in "$@"; do
    sign "$name" clientAuth
done
chmod 0644 ./*.crt
echo "ok $dir"
