"""Encrypted private key files: our own format 1, and the PKCS#8 files of earlier releases.

Why a format of our own: `cryptography` writes encrypted PKCS#8 only through
``BestAvailableEncryption``, which is PBKDF2-HMAC-SHA256 with 2,048 iterations, far below
what a stolen file needs today; its ``encryption_builder()``, which sets the rounds, supports
only OpenSSH and PKCS#12 (checked on cryptography 50). So a key file is now the key's
unencrypted PKCS#8 DER, encrypted with AES-256-GCM under a key derived from the passphrase
with scrypt (RFC 7914), with the scrypt parameters in the file. Each key is one PEM-armoured
block, labelled ``LVVX ENCRYPTED PRIVATE KEY``, whose base64 body is::

    offset  size  field
    0       8     magic  b"LVVX-KEY"
    8       1     format version, 1
    9       1     KDF, 1 = scrypt
    10      1     log2 of scrypt's N
    11      1     scrypt's r
    12      1     scrypt's p
    13      16    salt (random; the same for every block of one file, so it is derived once)
    29      12    AES-GCM nonce (random per block)
    41      ...   AES-256-GCM ciphertext of the PKCS#8 DER, then its 16-byte tag

The associated data is bytes 0–40, so no parameter can be changed without the tag failing.
A wrong passphrase and a damaged file are one error, which says nothing of the key.

Files of earlier releases (``ENCRYPTED PRIVATE KEY`` blocks: PKCS#8, PBKDF2 with 2,048
iterations) are still read; `KeyStore.upgrade` (``lvvx keys upgrade``) rewrites them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from broker.errors import WeakPassphrase
from broker.owner_only import PRIVATE_FILE_MODE

KEY_FILE_LABEL = "LVVX ENCRYPTED PRIVATE KEY"
LEGACY_LABEL = "ENCRYPTED PRIVATE KEY"
KEY_FILE_MAGIC = b"LVVX-KEY"
KEY_FILE_VERSION = 1
_KDF_SCRYPT = 1
SALT_BYTES = 16
"""128 random bits: no two files share a derived key, and no table can be precomputed."""
_NONCE_BYTES = 12
_HEADER_BYTES = len(KEY_FILE_MAGIC) + 5 + SALT_BYTES + _NONCE_BYTES
_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.+?)-----END \1-----\s*", re.S)

MIN_PASSPHRASE_CHARS = 12
"""No new key file under a shorter passphrase: the KDF only multiplies the cost of each
guess, and a short passphrase leaves too few guesses to make (NIST SP 800-63B asks for at
least 15 characters of a single-factor secret; 12 is the floor OWASP gives for a password
with other controls, here the file's owner-only mode and the machine's access control)."""

MAX_SCRYPT_MEMORY = 1 << 30
"""A file asking scrypt for more than 1 GiB (128·r·N bytes) is refused before deriving: a
hostile or damaged file must not exhaust the reader's memory."""

MAX_SCRYPT_WORK = 1 << 24
"""Nor more than 16 times the default's work (p·r·N, 2^20 at the default): nor its CPU."""


@dataclass(frozen=True, slots=True)
class KeyFileKdf:
    """scrypt's cost parameters (RFC 7914): N = 2**log2_n, block size r, parallelism p."""

    log2_n: int
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.log2_n <= 30 and 1 <= self.r <= 255 and 1 <= self.p <= 255):
            raise ValueError("scrypt parameters out of range")
        if 128 * self.r * (1 << self.log2_n) > MAX_SCRYPT_MEMORY:
            raise ValueError("scrypt parameters ask for more than 1 GiB")
        if self.p * self.r * (1 << self.log2_n) > MAX_SCRYPT_WORK:
            raise ValueError("scrypt parameters ask for more than 16 times the default work")

    def at_least(self, other: KeyFileKdf) -> bool:
        """Whether this setting costs a guesser at least as much as ``other`` on each axis."""
        return self.log2_n >= other.log2_n and self.r >= other.r and self.p >= other.p

    def describe(self) -> str:
        return f"scrypt N=2^{self.log2_n} r={self.r} p={self.p}"


KEY_FILE_KDF = KeyFileKdf(log2_n=17, r=8, p=1)
"""What every key file gets by default: OWASP's scrypt setting (Password Storage Cheat
Sheet: N=2^17, r=8, p=1; RFC 7914 §2 uses N=2^20 for file encryption). 128 MiB and about
0.3–0.7 s per file on one core, paid once per file when a gateway starts; a guesser pays it
for every guess."""

DEMO_KEY_FILE_KDF = KeyFileKdf(log2_n=10, r=8, p=1)
"""The demo's, the benchmarks' and the tests' setting only, never for real keys: 1 MiB and a
few milliseconds, so a demo network of twelve parties is made and loaded in well under a
second. The demo keeps its passphrase in a file beside its keys anyway."""

LEGACY_KDF_DESCRIPTION = "PKCS#8, PBKDF2-HMAC-SHA256 with 2,048 iterations"


def check_passphrase(passphrase: bytes, *, allow_weak: bool = False) -> None:
    """Raise `WeakPassphrase` unless ``passphrase`` has `MIN_PASSPHRASE_CHARS` characters
    (UTF-8 characters; bytes for a passphrase that is not UTF-8 text). ``allow_weak`` is the
    demo's and the tests' explicit opt-out."""
    if allow_weak:
        return
    try:
        length = len(passphrase.decode())
    except UnicodeDecodeError:
        length = len(passphrase)
    if length < MIN_PASSPHRASE_CHARS:
        raise WeakPassphrase(
            f"the key passphrase has {length} characters; new key files need at least "
            f"{MIN_PASSPHRASE_CHARS}, as a short one is guessed whatever the file's KDF"
        )


@dataclass(frozen=True, slots=True)
class KeyFileContents:
    """The keys of one file, and how it was encrypted: ``kdf`` is None for an old-format
    (PKCS#8, 2,048-iteration PBKDF2) file."""

    keys: list[object]
    kdf: KeyFileKdf | None

    @property
    def legacy(self) -> bool:
        return self.kdf is None

    def describe(self) -> str:
        if self.kdf is None:
            return LEGACY_KDF_DESCRIPTION
        return f"format {KEY_FILE_VERSION}, {self.kdf.describe()}, AES-256-GCM"


def _derive(passphrase: bytes, salt: bytes, kdf: KeyFileKdf) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << kdf.log2_n, r=kdf.r, p=kdf.p).derive(passphrase)


def _armour(body: bytes) -> bytes:
    text = base64.encodebytes(body).decode()
    return f"-----BEGIN {KEY_FILE_LABEL}-----\n{text}-----END {KEY_FILE_LABEL}-----\n".encode()


def encrypt_key_file(
    keys: Sequence[object], passphrase: bytes, kdf: KeyFileKdf = KEY_FILE_KDF
) -> bytes:
    """A key file's bytes: one block per key, in order, all under one derived key."""
    salt = os.urandom(SALT_BYTES)
    aead = AESGCM(_derive(passphrase, salt, kdf))
    params = bytes([KEY_FILE_VERSION, _KDF_SCRYPT, kdf.log2_n, kdf.r, kdf.p])
    blocks = []
    for key in keys:
        der = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        header = KEY_FILE_MAGIC + params + salt + os.urandom(_NONCE_BYTES)
        blocks.append(_armour(header + aead.encrypt(header[-_NONCE_BYTES:], der, header)))
    return b"".join(blocks)


def key_file_blocks(data: bytes) -> int:
    return len(_BLOCK.findall(data))


def read_key_file(data: bytes, passphrase: bytes) -> KeyFileContents:
    """The keys of a key file of either format; ValueError (saying nothing of the key or the
    passphrase) if it is neither, is damaged, or the passphrase is wrong."""
    found = list(_BLOCK.finditer(data))
    labels = {m[1].decode() for m in found}
    if labels == {LEGACY_LABEL}:
        try:
            legacy = [serialization.load_pem_private_key(m[0], passphrase) for m in found]
        except (ValueError, TypeError) as exc:
            raise ValueError("wrong passphrase or not a key file") from exc
        return KeyFileContents(list(legacy), None)
    if labels != {KEY_FILE_LABEL}:
        raise ValueError("not a key file")
    derived: dict[tuple[bytes, bytes], AESGCM] = {}
    keys: list[object] = []
    kdf = None
    for match in found:
        try:
            blob = base64.b64decode(match[2])
        except ValueError:
            raise ValueError("not a key file") from None
        header, sealed = blob[:_HEADER_BYTES], blob[_HEADER_BYTES:]
        kdf = _parse_header(header)
        params, salt = header[8:13], header[13 : 13 + SALT_BYTES]
        if (params, salt) not in derived:
            derived[params, salt] = AESGCM(_derive(passphrase, salt, kdf))
        try:
            der = derived[params, salt].decrypt(header[-_NONCE_BYTES:], sealed, header)
        except InvalidTag:
            raise ValueError("wrong passphrase or not a key file") from None
        keys.append(serialization.load_der_private_key(der, None))
    return KeyFileContents(keys, kdf)


def _parse_header(header: bytes) -> KeyFileKdf:
    if len(header) != _HEADER_BYTES or not header.startswith(KEY_FILE_MAGIC):
        raise ValueError("not a key file")
    version, kdf_id, log2_n, r, p = header[8:13]
    if version != KEY_FILE_VERSION:
        raise ValueError(f"key file format {version} is not supported (this release reads 1)")
    if kdf_id != _KDF_SCRYPT:
        raise ValueError(f"key file KDF {kdf_id} is not supported")
    try:
        return KeyFileKdf(log2_n, r, p)
    except ValueError as exc:
        raise ValueError(f"key file: {exc}") from None


# --- rewriting a file in place ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyFileChange:
    """What `rewrap_key_file` found in one file, and did (or would do)."""

    path: Path
    was: str
    now: str
    rewritten: bool

    @property
    def needed(self) -> bool:
        return self.was != self.now


def rewrap_key_file(
    path: Path,
    passphrase: bytes,
    *,
    new_passphrase: bytes | None = None,
    kdf: KeyFileKdf = KEY_FILE_KDF,
    allow_weak_passphrase: bool = False,
    dry_run: bool = False,
) -> KeyFileChange:
    """Rewrite the key file ``path`` in format 1 at ``kdf`` (under ``new_passphrase`` if
    given), unless it is in that format at that cost already: idempotent. The file is
    decrypted first (a wrong passphrase changes nothing), then replaced atomically by an
    owner-only file (written beside it, flushed, renamed over it). `KeyStore.upgrade` calls it
    for every key file of a folder; a key rotation calls it for the files it keeps."""
    contents = read_key_file(_read(path), passphrase)
    target = f"format {KEY_FILE_VERSION}, {kdf.describe()}, AES-256-GCM"
    current = contents.kdf is not None and contents.kdf.at_least(kdf)
    if current and new_passphrase is None:
        return KeyFileChange(path, contents.describe(), contents.describe(), rewritten=False)
    secret = passphrase if new_passphrase is None else new_passphrase
    check_passphrase(secret, allow_weak=allow_weak_passphrase)
    if not dry_run:
        replace_private(path, encrypt_key_file(contents.keys, secret, kdf))
    return KeyFileChange(path, contents.describe(), target, rewritten=not dry_run)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror}") from exc


def replace_private(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace ``path`` by ``data`` atomically: a reader sees the old file or the new one,
    never a part; the new one is owner-only (0600) whatever the umask, unless ``mode`` says
    otherwise (a public record is 0644)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)
