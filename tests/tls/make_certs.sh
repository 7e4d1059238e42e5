#!/usr/bin/env bash
# Throwaway test PKI for the TLS tests, made with the openssl CLI at test
# time. Validity never depends on today's date: the good certificates run
# from 2000 to 2099, the expired one from 2000 to 2001 (`openssl ca` with
# explicit -startdate/-enddate).
#   ca.pem                 the test CA (trusted by the tests)
#   server.pem/.key        localhost, 127.0.0.1, ::1; 2000-2099
#   expired.pem/.key       same names; 2000-2001
#   wronghost.pem/.key     wrong.example only; 2000-2099
#   unknown.pem/.key       localhost, issued by another CA (unknown-ca.pem)
#   client.pem/.key        a client certificate (clientAuth) of the test CA
set -eu
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
rm -rf db && mkdir -p db/ca db/unknown

START=20000101000000Z
END=20991231235959Z

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

cat > ext.cnf <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[wrong_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
CNF

cafile() { # name
  cat > "db/$1/ca.cnf" <<CNF
[ca]
default_ca = this
[this]
dir = db/$1
database = db/$1/index.txt
serial = db/$1/serial
new_certs_dir = db/$1
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = x
CNF
  : > "db/$1/index.txt"
  echo 01 > "db/$1/serial"
}

# sign NAME CN EXT CA-DIR START END [selfsign]
sign() {
  local name=$1 cn=$2 ext=$3 ca=$4 s=$5 e=$6 self=${7:-}
  [ -f "$name.key" ] || key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "db/$name.csr" 2>/dev/null
  if [ -n "$self" ]; then
    openssl ca -batch -config "db/$ca/ca.cnf" -selfsign -keyfile "$name.key" \
      -startdate "$s" -enddate "$e" -extfile ext.cnf -extensions "$ext" \
      -in "db/$name.csr" -out "$name.pem" 2>/dev/null
  else
    openssl ca -batch -config "db/$ca/ca.cnf" -cert "$ca.pem" -keyfile "$ca.key" \
      -startdate "$s" -enddate "$e" -extfile ext.cnf -extensions "$ext" \
      -in "db/$name.csr" -out "$name.pem" 2>/dev/null
  fi
  # keep the PEM block only
  openssl x509 -in "$name.pem" -out "$name.pem"
}

cafile ca
cafile unknown
sign ca "lightws test CA" ca_ext ca $START $END self
sign server localhost server_ext ca $START $END
sign expired localhost server_ext ca 20000101000000Z 20010101000000Z
sign wronghost wrong.example wrong_ext ca $START $END
sign client "lightws test client" client_ext ca $START $END
# another CA nobody trusts
key unknown-ca.key
openssl req -new -key unknown-ca.key -subj "/CN=unknown CA" -out db/unknown-ca.csr 2>/dev/null
openssl ca -batch -config db/unknown/ca.cnf -selfsign -keyfile unknown-ca.key \
  -startdate $START -enddate $END -extfile ext.cnf -extensions ca_ext \
  -in db/unknown-ca.csr -out unknown-ca.pem 2>/dev/null
openssl x509 -in unknown-ca.pem -out unknown-ca.pem
key unknown.key
openssl req -new -key unknown.key -subj "/CN=localhost" -out db/unknown.csr 2>/dev/null
openssl ca -batch -config db/unknown/ca.cnf -cert unknown-ca.pem -keyfile unknown-ca.key \
  -startdate $START -enddate $END -extfile ext.cnf -extensions server_ext \
  -in db/unknown.csr -out unknown.pem 2>/dev/null
openssl x509 -in unknown.pem -out unknown.pem
openssl verify -CAfile ca.pem server.pem >/dev/null
echo "make_certs: test PKI in $dir"
