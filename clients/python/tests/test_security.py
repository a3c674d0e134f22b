"""TLS, mutual TLS and bearer tokens against the real service (``serve --tls-*`` and ``auth:``)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ratelimitd import AuthError, Client, tls_credentials
from tests.server import Server

TOKEN = "team-a-secret-token"


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _issue(directory: Path, name: str, subject: str, ext: str) -> None:
    (directory / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{ext}\n")
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject)  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate named team-b."""
    directory = tmp_path_factory.mktemp("tls")
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA")  # fmt: skip
    _issue(directory, "server", "/CN=127.0.0.1",
           "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")  # fmt: skip
    _issue(directory, "client", "/CN=team-b",
           "subjectAltName=DNS:team-b.internal\nextendedKeyUsage=clientAuth")  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def tls_server(certificates: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service with mutual TLS (client certificate optional) and two identities."""
    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    policy = f"""
auth:
  identities:
    - {{name: team-a, tokens: [{{sha256: {token_hash}}}], domains: [team-a]}}
    - {{name: team-b, certificate_names: [team-b.internal], domains: [team-b]}}
"""
    server = Server(
        tmp_path_factory.mktemp("tls-server"),
        policy,
        ("--tls-cert", str(certificates / "server.crt"), "--tls-key", str(certificates / "server.key"),
         "--tls-client-ca", str(certificates / "ca.crt"), "--tls-client-auth", "optional"),
    )  # fmt: skip
    yield server
    server.stop()


def test_a_token_over_tls_names_the_identity(certificates: Path, tls_server: Server) -> None:
    credentials = tls_credentials(ca_file=certificates / "ca.crt")
    client = Client(tls_server.grpc_addr, "team-a", credentials=credentials, token=TOKEN, timeout=5)
    assert client.check().allowed
    with pytest.raises(AuthError) as denied:
        client.check(domain="team-b")
    client.close()
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.message == 'identity "team-a" may not check domain "team-b"'


def test_a_client_certificate_names_the_identity(certificates: Path, tls_server: Server) -> None:
    credentials = tls_credentials(
        ca_file=certificates / "ca.crt",
        cert_file=certificates / "client.crt",
        key_file=certificates / "client.key",
    )
    client = Client(tls_server.grpc_addr, "team-b", credentials=credentials, timeout=5)
    assert client.check().allowed
    client.close()


def test_no_credentials_and_plaintext_are_refused(certificates: Path, tls_server: Server) -> None:
    credentials = tls_credentials(ca_file=certificates / "ca.crt")
    anonymous = Client(tls_server.grpc_addr, "team-a", credentials=credentials, timeout=5)
    with pytest.raises(AuthError) as refused:
        anonymous.check()
    anonymous.close()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.message.startswith("anonymous callers are not allowed")
    # Plaintext to a TLS port is a failing service: with on_error="closed" it is refused.
    plaintext = Client(tls_server.grpc_addr, "team-a", token=TOKEN, timeout=2, on_error="closed")
    decision = plaintext.check()
    plaintext.close()
    assert not decision.allowed
    assert decision.code == "UNAVAILABLE"


def test_the_token_is_never_printed() -> None:
    client = Client("127.0.0.1:1", "web", token=TOKEN)
    assert TOKEN not in repr(client.options)
    assert "token=***" in repr(client.options)
