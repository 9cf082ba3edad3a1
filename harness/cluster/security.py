"""Connections that cost what a hosted database charges: TLS and SCRAM-SHA-256.

A hosted PostgreSQL takes only TLS connections, authenticated with
SCRAM-SHA-256. Each new connection then pays a TLS handshake (a key exchange
and a certificate) and SCRAM's key derivation (4,096 rounds of PBKDF2 on the
client and the server) on top of the backend's start: on loopback with
``trust`` a connection costs about a millisecond, which understates what a
pooler saves its servers. A cluster started with a :class:`Security` asks
every TCP client for both, PgBouncer included, on its client and its server
side; the harness's own sessions on the Unix socket stay trusted.

The server and PgBouncer hold the same SCRAM secret, not the password: a
hosted server stores only the secret, and a production PgBouncer reads it from
the server (``auth_query``) or its ``auth_file``. With the password in its
``auth_file`` PgBouncer would derive a secret at every client's login, 4,096
PBKDF2 rounds on its one thread (measured: 3.9 ms of its CPU a login, against
1.0 ms with the secret), so every request through it would wait behind each new
client's login, which no production pooler pays. With the secret it checks the
client's proof, and logs in to the server with the keys that proof carries
(PgBouncer's SCRAM pass-through, which needs the server's secret to be this one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.cluster.processes import give_to_server_user, prepare_dir
from harness.errors import InfrastructureError

__all__ = ["SSL_MODE", "Security", "hba_text", "make_security", "scram_secret"]

#: what the clients ask for: encryption, without checking the certificate's issuer,
#: as a hosted database's connection strings say (``sslmode=require``)
SSL_MODE = "require"
CERT_NAME = "server.crt"
KEY_NAME = "server.key"
#: PostgreSQL's default ``scram_iterations``: a login costs what a hosted server's does
SCRAM_ITERATIONS = 4096


@dataclass(frozen=True)
class Security:
    """The harness login's password and the certificate every node presents."""

    password: str
    directory: Path
    #: the password's SCRAM-SHA-256 secret, which the servers and PgBouncer store
    secret: str

    @property
    def cert_file(self) -> Path:
        return self.directory / CERT_NAME

    @property
    def key_file(self) -> Path:
        return self.directory / KEY_NAME

    def client_params(self) -> dict[str, str]:
        """What a client adds to its connection string to be let in."""
        return {"password": self.password, "sslmode": SSL_MODE}

    def install(self, datadir: Path) -> None:
        """Give a server its certificate and the rules that demand TLS and SCRAM.

        The files go into the data directory, so a replica cloned from it with
        ``pg_basebackup`` serves the same ones, and its settings name them relative
        to it.
        """
        for name in (CERT_NAME, KEY_NAME):
            target = datadir / name
            shutil.copyfile(self.directory / name, target)
            target.chmod(0o600)  # PostgreSQL refuses a key others may read
            give_to_server_user(target)
        hba = datadir / "pg_hba.conf"
        hba.write_text(hba_text())
        give_to_server_user(hba)


def hba_text() -> str:
    """Trust on the Unix socket (the harness's own sessions); TLS and SCRAM on TCP.

    No ``host`` line: a client without TLS is refused, as a hosted server refuses it.
    """
    return (
        "# written by pgcutover: as a hosted database, TCP clients need TLS and SCRAM\n"
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostssl replication all 127.0.0.1/32 scram-sha-256\n"
    )


def scram_secret(password: str, *, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The secret PostgreSQL stores for ``password`` (RFC 5802/7677, as ``pg_authid`` and
    PgBouncer's ``auth_file`` write it); ``ALTER ROLE … PASSWORD`` takes it as it is."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def make_security(directory: Path) -> Security:
    """A self-signed certificate for 127.0.0.1 and a fresh password, in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise InfrastructureError(
            "TLS was asked for, and openssl is not installed to make the servers' "
            "certificate: install it (Debian: apt-get install openssl) or set "
            "[network] tls = false to compare on plain loopback"
        )
    prepare_dir(directory)
    password = secrets.token_urlsafe(18)
    security = Security(
        password=password,
        directory=directory,
        secret=scram_secret(password, salt=secrets.token_bytes(16)),
    )
    # RSA 2048: the key size hosted databases present, so the handshake costs as much.
    argv = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(security.key_file), "-out", str(security.cert_file),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise InfrastructureError(
            f"openssl could not make the servers' certificate (exit code {done.returncode}): "
            f"{done.stderr.strip()[-500:]}; or set [network] tls = false"
        )
    for path in (security.cert_file, security.key_file):
        path.chmod(0o600)
        give_to_server_user(path)
    return security
