"""Where the log's signing key lives: outside the data directory it signs.

Whoever can write the data directory can rewrite the log; if the key sat beside it they could
also re-sign every head, and offline verification would pass. So by default the private key is
kept in the user's configuration directory (`$TOCSIN_CONFIG_DIR`, else
`$XDG_CONFIG_HOME/tocsin`, else `~/.config/tocsin`) as `keys/<fingerprint>.key`, and the data
directory holds only the public key (`log-signing.pub`), which names the key the log is signed
with. `--log-key PATH` (setting `log_key`) puts it anywhere else, e.g. on a hardware token's
mount or a secrets volume.

A data directory from before this split still has `log-signing.key` inside: it keeps working,
with a warning at every start, until the key is moved (see `docs/deploy.md`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tocsin.audit import key_id, private_key_to_pem, public_key_raw
from tocsin.errors import TocsinError
from tocsin.store.merkle import load_signing_key

__all__ = [
    "LEGACY_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "config_dir",
    "data_dir_public_key",
    "default_key_path",
    "fingerprint",
    "open_data_dir_key",
    "public_key_pem",
]

LEGACY_KEY_FILE: Final = "log-signing.key"
PUBLIC_KEY_FILE: Final = "log-signing.pub"

log = logging.getLogger("tocsin")


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user configuration directory of tocsin."""
    env = os.environ if env is None else env
    explicit = env.get("TOCSIN_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / "tocsin"
    return Path.home() / ".config" / "tocsin"


def fingerprint(raw_public: bytes) -> str:
    """A file-name-safe name of a key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def default_key_path(raw_public: bytes, base: Path | None = None) -> Path:
    """Where a log key is kept by default, named by its public key."""
    folder = config_dir() if base is None else Path(base)
    return folder / "keys" / f"{fingerprint(raw_public)}.key"


def public_key_pem(raw_public: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(raw_public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def data_dir_public_key(data_dir: Path | str) -> bytes | None:
    """The raw public key a data directory says its log is signed with (None if it says none)."""
    path = Path(data_dir) / PUBLIC_KEY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TocsinError(f"{path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise TocsinError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TocsinError(f"{path}: not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `data`, durably; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def open_data_dir_key(
    data_dir: Path | str, key_file: Path | None, base: Path | None = None
) -> Ed25519PrivateKey:
    """The signing key of a data directory's log, made on the log's first start.

    `key_file` (`--log-key`) when given; else the legacy `log-signing.key` inside the data
    directory (with a warning); else the key named by the data directory's `log-signing.pub`
    in the configuration directory `base`; else, for a log never signed, a new key saved there.
    The key must match `log-signing.pub` when the data directory has one.
    """
    data_dir = Path(data_dir)
    pinned = data_dir_public_key(data_dir)
    legacy = data_dir / LEGACY_KEY_FILE
    if key_file is not None:
        key = load_signing_key(key_file)
        where = str(key_file)
    elif legacy.is_file():
        key = load_signing_key(legacy)
        where = str(legacy)
        log.warning(
            "%s: the log signing key is inside the data directory, so whoever can rewrite the "
            "log can re-sign it; move it out (docs/deploy.md, 'The log signing key') and start "
            "with --log-key", legacy)
    elif pinned is not None:
        path = default_key_path(pinned, base)
        if not path.is_file():
            raise TocsinError(
                f"{data_dir} is signed with key {key_id(pinned)}, expected at {path}; give its "
                "path with --log-key (setting log_key)")
        key = load_signing_key(path)
        where = str(path)
    else:
        key = Ed25519PrivateKey.generate()
        raw = public_key_raw(key)
        path = default_key_path(raw, base)
        _write_new(path, private_key_to_pem(key), 0o600)
        where = str(path)
        log.info("made the log signing key %s (id %s); keep a copy somewhere safe", path,
                 key_id(raw))
    raw = public_key_raw(key)
    if pinned is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            _write_new(data_dir / PUBLIC_KEY_FILE, public_key_pem(raw), 0o644)
        except FileExistsError:  # another process wrote it first: check against theirs
            pinned = data_dir_public_key(data_dir)
    if pinned is not None and pinned != raw:
        raise TocsinError(
            f"{where} (key {key_id(raw)}) is not the key this log is signed with "
            f"({key_id(pinned)}, per {data_dir / PUBLIC_KEY_FILE})")
    return key
