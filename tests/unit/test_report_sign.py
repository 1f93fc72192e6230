"""Signing keys: created 0600, refused when unsafe, passphrases. Signed release folders are
in tests/system/test_report_sign.py."""

import os

import pytest

from privsynth.errors import ConfigError
from privsynth.report.keys import fingerprint, keygen, load_private_key


def test_keygen_creates_0600_keys_and_refuses_unsafe_ones(tmp_path, monkeypatch):
    priv, pub = keygen(tmp_path / "k")
    assert (priv.stat().st_mode & 0o777) == 0o600 and pub.name == "k.pub.pem"
    key = load_private_key(priv)
    assert fingerprint(key.public_key()) == fingerprint(load_private_key(priv).public_key())
    with pytest.raises(ConfigError, match="exists"):
        keygen(tmp_path / "k")
    os.chmod(priv, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_private_key(priv)
    p2, _ = keygen(tmp_path / "p", passphrase=b"s3cret")
    with pytest.raises(ConfigError, match="passphrase"):
        load_private_key(p2)
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_private_key(p2, passphrase=b"nope")
    monkeypatch.setenv("PRIVSYNTH_KEY_PASSPHRASE", "s3cret")
    assert load_private_key(p2)
    assert b"s3cret" not in p2.read_bytes()
