#!/bin/sh
# Writes what the control plane's Secrets are generated from (kustomization.yaml), into
# DIR (default: this script's folder), without overwriting anything that already exists:
#   tokens/admin.token  tokens/proxy.token     random bearer tokens
#   tls/ca.crt tls/ca.key                       a private CA (keep ca.key safe, or delete it)
#   tls/tls.crt tls/tls.key                     the control server's certificate, signed by it
# Needs only openssl. NAMESPACE (default pillion-system) must match where you install.
set -eu
dir=${1:-$(dirname "$0")}
ns=${NAMESPACE:-pillion-system}
svc=pillion-control
umask 077
mkdir -p "$dir/tokens" "$dir/tls"

for name in admin proxy; do
  if [ ! -s "$dir/tokens/$name.token" ]; then
    openssl rand -hex 32 > "$dir/tokens/$name.token"
    echo "wrote $dir/tokens/$name.token"
  fi
done

if [ ! -s "$dir/tls/tls.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=pillion-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/tls/ca.key" -out "$dir/tls/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$svc.$ns.svc" \
    -keyout "$dir/tls/tls.key" -out "$dir/tls/tls.csr" 2>/dev/null
  # The names the API server (webhook), the proxies (control API) and a port-forward use.
  cat > "$dir/tls/tls.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1
EXT
  openssl x509 -req -sha256 -days 825 -in "$dir/tls/tls.csr" -CA "$dir/tls/ca.crt" -CAkey "$dir/tls/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$dir/tls/tls.ext" -out "$dir/tls/tls.crt" 2>/dev/null
  rm -f "$dir/tls/tls.csr" "$dir/tls/tls.ext"
  echo "wrote $dir/tls/ca.crt, $dir/tls/tls.crt, $dir/tls/tls.key"
fi
