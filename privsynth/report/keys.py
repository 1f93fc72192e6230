"""Ed25519 signing keys: create, load (refusing unsafe key files), fingerprint.

The private key is a PKCS#8 PEM file, created with mode 0600 and optionally encrypted with a
passphrase; the public key is a SubjectPublicKeyInfo PEM file that OpenSSL 3 reads as is. A
key's fingerprint is ``SHA256:`` + the hex SHA-256 of its DER SubjectPublicKeyInfo -- the same
value ``openssl pkey -pubin -outform DER | sha256sum`` prints, so it can be checked by hand.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privsynth.errors import ConfigError, SignatureError
from privsynth.io import atomic_write_bytes

#: Environment variable read for the passphrase of an encrypted private key.
PASSPHRASE_ENV = "PRIVSYNTH_KEY_PASSPHRASE"


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<hex>`` of the key's DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def keygen(out: str | Path, *, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Create ``out`` (private key, mode 0600) and ``out.pub.pem``; never overwrite either.

    Returns the two paths.
    """
    priv_path = Path(out)
    pub_path = priv_path.with_name(priv_path.name + ".pub.pem")
    for p in (priv_path, pub_path):
        if p.exists():
            raise ConfigError(f"{p} exists; choose another name (keys are never overwritten)")
    if not priv_path.parent.is_dir():
        raise ConfigError(f"the folder {priv_path.parent} for the key does not exist")
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # Created 0600 from the first byte (the temp file is opened with that mode), then renamed.
    atomic_write_bytes(priv_path, pem, mode=0o600)
    atomic_write_bytes(pub_path, public_pem(key.public_key()), mode=0o644)
    return priv_path, pub_path


def load_private_key(path: str | Path, *, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read an Ed25519 private key, refusing a file that others may read.

    The passphrase, when the key is encrypted and none is given, is read from the
    ``PRIVSYNTH_KEY_PASSPHRASE`` environment variable.
    """
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {p}: {exc.strerror or exc}") from exc
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"key file {p} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod 600 {p}` and make a new key if others may have copied it"
        )
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise ConfigError(
                f"key file {p} is protected by a passphrase; put it in the {PASSPHRASE_ENV} "
                "environment variable (API: passphrase=...)"
            ) from exc
        raise ConfigError(f"key file {p} is not encrypted; do not pass a passphrase") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        hint = "wrong passphrase, or not" if passphrase else "not"
        raise ConfigError(
            f"key file {p}: {hint} a PEM private key (make one with `privsynth keygen`)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"key file {p} holds a {type(key).__name__}; privsynth signs with Ed25519"
        )
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (SubjectPublicKeyInfo PEM)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read public key {p}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"{p} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{p} holds a {type(key).__name__}, not an Ed25519 public key")
    return key
