#!/bin/sh
# A private CA and one certificate for the three NATS servers of docker-compose.cluster.yml
# (names nats1, nats2, nats3), in deploy/cluster/certs. For a real centre, use your PKI.
set -eu
cd "$(dirname "$0")"
mkdir -p certs
cd certs
openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=Vigie NATS CA" -keyout ca.key -out ca.pem
openssl req -newkey rsa:3072 -nodes -subj "/CN=nats" -keyout nats.key -out nats.csr
printf "subjectAltName=DNS:nats1,DNS:nats2,DNS:nats3\nextendedKeyUsage=serverAuth,clientAuth\n" > ext.cnf
openssl x509 -req -in nats.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile ext.cnf -out nats.pem
rm -f nats.csr ext.cnf ca.srl
chmod 600 ca.key nats.key   # the NATS image runs as root: it reads them
echo "certificates in $(pwd)"
