#!/usr/bin/env python3
"""Writes N self-signed ECDSA P-256 certificates, each with its own key, for
the load harness's idle-memory measurement (benches/load/run).

    gen_certs.py DIR N

Certificate i covers cert-i.bench.example. Files: DIR/crt/i.crt and
DIR/key/i.key (nginx, Portcullis), DIR/pem/i.pem (certificate then key, for
haproxy and caddy). Uses the `cryptography` package (python3-cryptography).
"""

import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main() -> None:
    out, count = sys.argv[1], int(sys.argv[2])
    for sub in ("crt", "key", "pem"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    for i in range(count):
        name = f"cert-{i}.bench.example"
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        crt_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with open(os.path.join(out, "crt", f"{i}.crt"), "wb") as f:
            f.write(crt_pem)
        with open(os.path.join(out, "key", f"{i}.key"), "wb") as f:
            f.write(key_pem)
        with open(os.path.join(out, "pem", f"{i}.pem"), "wb") as f:
            f.write(crt_pem + key_pem)


if __name__ == "__main__":
    main()
