"""OIDC tokens shaped like Google's, signed with a key made at start, and the certs to check them."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

GOOGLE_ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME_S = 3600


def _make_key() -> tuple[str, str, str]:
    """A fresh RSA key: (key id, private key PEM, self-signed certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lote cloud tasks emulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_id = hashlib.sha256(cert_pem.encode()).hexdigest()[:40]
    return key_id, private_pem, cert_pem


@dataclass
class TokenMinter:
    """Signs ID tokens like the ones Cloud Tasks attaches for `oidc_token`."""

    key_id: str = ""
    private_pem: str = ""
    cert_pem: str = ""
    _signer: crypt.RSASigner | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.private_pem:
            self.key_id, self.private_pem, self.cert_pem = _make_key()
        self._signer = crypt.RSASigner.from_string(self.private_pem, key_id=self.key_id)

    def certs(self) -> dict[str, str]:
        """Google's v1 certs format: key id → X.509 certificate PEM."""
        return {self.key_id: self.cert_pem}

    def mint(self, email: str, audience: str, now: float | None = None) -> str:
        """An RS256 ID token for `email` with `audience`."""
        issued = int(now if now is not None else time.time())
        subject = str(int(hashlib.sha256(email.encode()).hexdigest()[:16], 16))
        payload = {
            "iss": GOOGLE_ISSUER,
            "aud": audience,
            "azp": subject,
            "sub": subject,
            "email": email,
            "email_verified": True,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME_S,
        }
        assert self._signer is not None
        return jwt.encode(self._signer, payload).decode()
