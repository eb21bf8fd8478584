"""Ed25519 keys for the four TUF top-level roles, kept as files in one directory.

Layout of a key directory::

    <dir>/<role>.key        PKCS#8 PEM private key, mode 0600 (keep root's offline)
    <dir>/<role>.pub.json   the public key as TUF writes it in root metadata

The private key never leaves the directory: the publisher signs with it in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from securesystemslib.signer import CryptoSigner, Signer, SSlibKey

from runtime.errors import ConfigError

ROLES = ("root", "targets", "snapshot", "timestamp")


def _private_path(directory: Path, role: str) -> Path:
    return directory / f"{role}.key"


def _public_path(directory: Path, role: str) -> Path:
    return directory / f"{role}.pub.json"


def init_keys(directory: Path, *, force: bool = False) -> dict[str, str]:
    """Generate one ed25519 key per role; returns role -> key id.

    Refuses to overwrite existing keys unless ``force``: losing the root key means
    re-provisioning every box with a new trusted root.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    existing = [r for r in ROLES if _private_path(directory, r).exists()]
    if existing and not force:
        raise ConfigError(
            f"{directory}: keys already exist for {', '.join(existing)} (use --force to replace)"
        )
    ids: dict[str, str] = {}
    for role in ROLES:
        signer = CryptoSigner.generate_ed25519()
        priv = _private_path(directory, role)
        # Create with 0600 from the start: never a moment where the key is world-readable.
        fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_bytes)
        os.chmod(priv, 0o600)
        key = signer.public_key
        _public_path(directory, role).write_text(
            json.dumps({"keyid": key.keyid, **key.to_dict()}, indent=2) + "\n"
        )
        ids[role] = key.keyid
    return ids


def load_public_key(directory: Path, role: str) -> SSlibKey:
    path = _public_path(Path(directory), role)
    try:
        data = json.loads(path.read_text())
        keyid = data.pop("keyid")
        return SSlibKey.from_dict(keyid, data)
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path}: no public key for role {role!r} (run headframe keys init)"
        ) from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a valid public key file: {e}") from e


def load_signer(directory: Path, role: str) -> Signer:
    """The signer for ``role``; raises ConfigError naming the missing or bad file."""
    directory = Path(directory)
    public = load_public_key(directory, role)
    priv = _private_path(directory, role).resolve()
    if not priv.is_file():
        raise ConfigError(f"{priv}: no private key for role {role!r}")
    try:
        return CryptoSigner.from_priv_key_uri(f"file2:{priv}", public)
    except Exception as e:  # cryptography raises several unrelated types here
        raise ConfigError(f"{priv}: cannot load the {role} private key: {e}") from e
