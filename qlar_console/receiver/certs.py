"""A local CA and the receiver's server certificate (127.0.0.1, ::1, localhost), so the console can verify TLS."""
import contextlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import LOCAL_CA_DIR

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock
    fcntl = None

log = logging.getLogger(__name__)

MIN_REMAINING = timedelta(days=30)
CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=397)
SERVER_NAMES = (
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
)


@dataclass(frozen=True)
class CertPaths:
    """Where the local CA and the receiver's certificate live (keys are mode 0600)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def cert_paths(instance_path: str | os.PathLike) -> CertPaths:
    """The file locations under instance/ca/."""
    directory = Path(instance_path) / LOCAL_CA_DIR
    return CertPaths(directory, directory / "ca.pem", directory / "ca.key",
                     directory / "receiver.pem", directory / "receiver.key")


def ensure_local_ca(instance_path: str | os.PathLike) -> CertPaths:
    """Create the local CA and the receiver certificate, or reuse them while valid for more than 30 days."""
    paths = cert_paths(instance_path)
    paths.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(paths.directory / ".lock"):
        ca = _load_pair(paths.ca_cert, paths.ca_key, _usable_ca)
        if ca is None:
            ca = _new_ca()
            _write_pair(paths.ca_cert, paths.ca_key, *ca)
            log.info("created the local CA at %s", paths.ca_cert)
            server = None
        else:
            server = _load_pair(paths.cert, paths.key, lambda cert: _usable_server_cert(cert, ca[0]))
        if server is None:
            _write_pair(paths.cert, paths.key, *_new_server_cert(*ca))
            log.info("issued the receiver certificate %s", paths.cert)
        for key_path in (paths.ca_key, paths.key):
            os.chmod(key_path, 0o600)
    return paths


def ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting the receiver certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(paths.cert), str(paths.key))
    return context


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise creation between processes (the console and a standalone receiver may start together)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load_pair(cert_path: Path, key_path: Path, usable):
    """The (certificate, key) stored at these paths if they match and usable(cert) is true, else None."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        return None
    now = datetime.now(UTC)
    if cert.not_valid_before_utc > now or cert.not_valid_after_utc - now <= MIN_REMAINING:
        return None
    return (cert, key) if usable(cert) else None


def _usable_ca(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)  # the server cert's AKI needs it
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _usable_server_cert(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # wrong issuer, bad signature, no SAN: issue a new one
        return False
    return all(name in names for name in SERVER_NAMES)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qlar-console"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "qlar-console local CA")])
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(ca_cert: x509.Certificate,
                     ca_key: ec.EllipticCurvePrivateKey) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = datetime.now(UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qlar reference receiver")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(SERVER_NAMES)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key) -> None:
    """Write the key (0600) then the certificate (0644), each atomically."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # the umask may have narrowed or an old tmp file widened it
    os.replace(tmp, path)
