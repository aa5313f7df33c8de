"""Checks that public keys are points we may use: canonical, on the curve, not of small order.

A key of small order lets a party make one signature that verifies for many messages
(Ed25519), or forces a known all-zero shared secret (X25519). The directory refuses such keys
when it is built and when it is loaded, so the envelope code never meets one.

Ed25519 decoding follows RFC 8032 §5.1.3; the arithmetic is plain Python, which is fine for
keys checked once per directory load, and never used to sign or verify.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

# A fixed X25519 scalar for the small-order test: any clamped scalar is a multiple of the
# cofactor 8, so it maps every point of small order to the all-zero output, which
# cryptography refuses with ValueError.
_PROBE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def x25519_usable(raw: bytes) -> bool:
    """True for a canonical X25519 public key that is not of small order (RFC 7748 §6.1
    says to check for the all-zero shared secret; we refuse such keys up front)."""
    if len(raw) != 32 or raw[31] & 0x80:
        return False
    if int.from_bytes(raw, "little") >= _P:
        return False  # a non-canonical encoding of u
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return False
    return True


def _decode_ed25519(raw: bytes) -> Point | None:
    """The point a 32-byte Ed25519 public key encodes, or None if it encodes none."""
    if len(raw) != 32:
        return None
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            return None  # not on the curve
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, (x * y) % _P)


def _add(a: Point, b: Point) -> Point:
    """Point addition on the twisted Edwards curve (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def ed25519_usable(raw: bytes) -> bool:
    """True for an Ed25519 public key that decodes to a point of large order."""
    point = _decode_ed25519(raw)
    if point is None:
        return False
    for _ in range(3):  # [8]P
        point = _add(point, point)
    x, y, z, _ = point
    return not (x % _P == 0 and (y - z) % _P == 0)  # [8]P is not the identity
