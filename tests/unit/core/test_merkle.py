"""RFC 6962 Merkle trees (`broker.merkle`) against a small independent implementation
written here straight from RFC 6962 §2.1 — MTH, PATH and PROOF over the raw data, and
verifiers that rebuild the tree heads by following those recursive definitions — for every
size 1..64 and every index / old size; the RFC's own worked examples (§2.1.3); the
Frontier a gateway keeps; and refusals: every tampered proof raises `ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from broker.merkle import (
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_and_proofs,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 64

# --- RFC 6962 §2.1, written out again over the data itself ---------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n])."""
    if not d:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _k(len(d))
    return _sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""

    def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = _k(n)
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    return subproof(m, d, True)


def path_len(m: int, n: int) -> int:
    """len(PATH(m, D[n])), from the shape of the recursion alone."""
    if n == 1:
        return 0
    k = _k(n)
    return 1 + (path_len(m, k) if m < k else path_len(m - k, n - k))


def proof_len(m: int, n: int, b: bool = True) -> int:
    """len(PROOF(m, D[n])), from the shape of the recursion alone."""
    if m == n:
        return 0 if b else 1
    k = _k(n)
    return 1 + (proof_len(m, k, b) if m <= k else proof_len(m - k, n - k, False))


def ref_inclusion_ok(leaf: bytes, m: int, n: int, audit: Sequence[bytes], head: bytes) -> bool:
    """Does ``audit`` lead from leaf ``m`` of a tree of ``n`` to ``head``? Rebuilt along the
    recursion of PATH: its last element is the sibling of the top split."""

    def up(m: int, n: int, audit: list[bytes]) -> bytes | None:
        if n == 1:
            return leaf if not audit else None
        if not audit:
            return None
        k, sibling = _k(n), audit[-1]
        if m < k:
            below = up(m, k, audit[:-1])
            return None if below is None else _sha(b"\x01" + below + sibling)
        below = up(m - k, n - k, audit[:-1])
        return None if below is None else _sha(b"\x01" + sibling + below)

    return 0 <= m < n and up(m, n, list(audit)) == head


def ref_consistency_ok(m: int, n: int, old: bytes, new: bytes, audit: Sequence[bytes]) -> bool:
    """Does ``audit`` show the tree (m, old) a prefix of (n, new)? Rebuilt along the recursion
    of SUBPROOF, giving both heads: (old tree's part, new tree's part) of each subtree."""

    def up(m: int, n: int, audit: list[bytes], b: bool) -> tuple[bytes, bytes] | None:
        if m == n:
            if b:
                return (old, old) if not audit else None
            return (audit[0], audit[0]) if len(audit) == 1 else None
        if not audit:
            return None
        k, other = _k(n), audit[-1]
        if m <= k:
            below = up(m, k, audit[:-1], b)
            return None if below is None else (below[0], _sha(b"\x01" + below[1] + other))
        below = up(m - k, n - k, audit[:-1], False)
        if below is None:
            return None
        return _sha(b"\x01" + other + below[0]), _sha(b"\x01" + other + below[1])

    return 0 < m <= n and up(m, n, list(audit), True) == (old, new)


def data(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + f"leaf {i}".encode() for i in range(n)]


def hashes(d: Sequence[bytes]) -> list[bytes]:
    return [leaf_hash(x) for x in d]


def refused(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except ProofError:
        return True
    return False


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit), *h[1:]])


# --- tree heads ---------------------------------------------------------------------------------


def test_the_empty_tree_head_is_the_hash_of_nothing() -> None:
    assert root([]) == hashlib.sha256(b"").digest() == mth([])
    assert Frontier().root() == hashlib.sha256(b"").digest()
    assert Frontier().size == 0


def test_leaf_and_node_hashes_are_domain_separated_as_rfc_6962_says() -> None:
    assert leaf_hash(b"x") == _sha(b"\x00x")
    assert node_hash(b"a" * 32, b"b" * 32) == _sha(b"\x01" + b"a" * 32 + b"b" * 32)
    # a leaf whose data looks like two child hashes is still not that node
    assert leaf_hash(b"a" * 32 + b"b" * 32) != node_hash(b"a" * 32, b"b" * 32)


@pytest.mark.parametrize("n", range(1, MAX_SIZE + 1))
def test_roots_and_proofs_agree_with_rfc_6962_for_every_index_and_old_size(n: int) -> None:
    d = data(n)
    leaves = hashes(d)
    head = mth(d)
    assert root(leaves) == head
    for m in range(n):
        audit = inclusion_proof(m, leaves)
        assert audit == path(m, d), f"PATH({m}, D[{n}])"
        verify_inclusion(leaves[m], m, n, audit, head)
        assert ref_inclusion_ok(leaves[m], m, n, audit, head)
    for m in range(1, n + 1):
        cons = consistency_proof(m, leaves)
        assert cons == proof(m, d), f"PROOF({m}, D[{n}])"
        verify_consistency(m, n, mth(d[:m]), head, cons)
        assert ref_consistency_ok(m, n, mth(d[:m]), head, cons)


@pytest.mark.parametrize("n", range(1, MAX_SIZE + 1))
def test_all_proofs_at_once_are_the_rfc_6962_paths_and_lead_to_the_root(n: int) -> None:
    d = data(n)
    head, proofs = root_and_proofs(hashes(d))
    assert head == mth(d)
    assert proofs == [path(m, d) for m in range(n)]
    for m, audit in enumerate(proofs):
        assert root_from_inclusion(hashes(d)[m], m, n, audit) == head


@pytest.mark.parametrize("n", range(1, MAX_SIZE + 1))
def test_the_frontier_gives_the_root_of_every_prefix_while_appending(n: int) -> None:
    leaves = hashes(data(n))
    frontier = Frontier()
    for i, leaf in enumerate(leaves):
        frontier.append(leaf)
        assert (frontier.size, frontier.root()) == (i + 1, root(leaves[: i + 1]))
    # a copy grows on its own; the original keeps its head
    twin = frontier.copy()
    twin.append(leaf_hash(b"one more"))
    assert frontier.root() == root(leaves) and frontier.size == n
    assert twin.root() == root([*leaves, leaf_hash(b"one more")]) and twin.size == n + 1


def test_rfc_6962_worked_examples_of_audit_paths_and_consistency_proofs() -> None:
    """RFC 6962 §2.1.3: the tree of seven leaves d0..d6, its nodes named as in the figure."""
    d = data(7)
    a, b, c, dd, e, f, j = hashes(d)
    g, h, i = node_hash(a, b), node_hash(c, dd), node_hash(e, f)
    k, l_ = node_hash(g, h), node_hash(i, j)
    assert root(hashes(d)) == node_hash(k, l_)
    leaves = hashes(d)
    assert inclusion_proof(0, leaves) == [b, h, l_]
    assert inclusion_proof(3, leaves) == [c, g, l_]
    assert inclusion_proof(4, leaves) == [f, j, k]
    assert inclusion_proof(6, leaves) == [i, k]
    assert consistency_proof(3, leaves) == [c, dd, g, l_]
    assert consistency_proof(4, leaves) == [l_]
    assert consistency_proof(6, leaves) == [i, j, k]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13, 16, 31, 33, 64])
def test_a_tampered_inclusion_proof_is_refused(n: int) -> None:
    leaves = hashes(data(n))
    head, other_head = root(leaves), root(hashes(data(n, b"other ")))
    for m in range(n):
        audit = inclusion_proof(m, leaves)
        verify_inclusion(leaves[m], m, n, audit, head)
        cases: list[tuple[str, tuple[object, ...]]] = [
            ("altered leaf", (flip(leaves[m]), m, n, audit, head)),
            ("swapped root", (leaves[m], m, n, audit, other_head)),
            ("too long", (leaves[m], m, n, [*audit, head], head)),
            ("too long, first", (leaves[m], m, n, [head, *audit], head)),
            ("index out of the tree", (leaves[m], n, n, audit, head)),
            ("negative index", (leaves[m], -1, n, audit, head)),
            ("size zero", (leaves[m], m, 0, audit, head)),
        ]
        cases += [
            (f"hash {x} flipped", (leaves[m], m, n, [*audit[:x], flip(audit[x], 7), *audit[x + 1 :]], head))
            for x in range(len(audit))
        ]  # fmt: skip
        if audit:
            cases += [
                ("too short", (leaves[m], m, n, audit[:-1], head)),
                ("too short, first", (leaves[m], m, n, audit[1:], head)),
                ("root as the leaf", (head, m, n, audit, head)),
            ]
        for wrong in range(n):  # the path from the root to a leaf names that leaf
            if wrong != m:
                cases.append((f"index {wrong}", (leaves[m], wrong, n, audit, head)))
        for wrong in range(m + 1, 2 * MAX_SIZE + 2):
            if wrong != n and path_len(m, wrong) != len(audit):
                cases.append((f"size {wrong}", (leaves[m], m, wrong, audit, head)))
        for what, args in cases:
            assert refused(verify_inclusion, *args), f"{what}: leaf {m} of {n}"


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 40, 64])
def test_a_tampered_consistency_proof_is_refused(n: int) -> None:
    leaves = hashes(data(n))
    new = root(leaves)
    for m in range(1, n):
        old = root(leaves[:m])
        cons = consistency_proof(m, leaves)
        verify_consistency(m, n, old, new, cons)
        cases: list[tuple[str, tuple[object, ...]]] = [
            ("swapped roots", (m, n, new, old, cons)),
            ("another old root", (m, n, flip(old), new, cons)),
            ("another new root", (m, n, old, flip(new), cons)),
            ("too long", (m, n, old, new, [*cons, new])),
            ("too short", (m, n, old, new, cons[:-1])),
            ("first dropped", (m, n, old, new, cons[1:])),
            ("sizes reversed", (n, m, new, old, cons)),
            ("old size zero", (0, n, old, new, cons)),
            ("as equal sizes", (n, n, old, new, cons)),
        ]
        cases += [
            (f"hash {x} flipped", (m, n, old, new, [*cons[:x], flip(cons[x], 3), *cons[x + 1 :]]))
            for x in range(len(cons))
        ]
        for wrong in range(1, 2 * MAX_SIZE + 2):
            if wrong != m and wrong <= n and proof_len(wrong, n) != len(cons):
                cases.append((f"old size {wrong}", (wrong, n, old, new, cons)))
            if wrong != n and wrong >= m and proof_len(m, wrong) != len(cons):
                cases.append((f"new size {wrong}", (m, wrong, old, new, cons)))
        for what, args in cases:
            assert refused(verify_consistency, *args), f"{what}: {m} → {n}"


def test_equal_sizes_need_an_empty_proof_and_the_same_head() -> None:
    head = root(hashes(data(5)))
    verify_consistency(5, 5, head, head, [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, head, head, [head])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, head, flip(head), [])


def test_proofs_are_only_made_for_leaves_and_prefixes_of_the_tree() -> None:
    leaves = hashes(data(4))
    for bad in (-1, 4):
        with pytest.raises(ValueError):
            inclusion_proof(bad, leaves)
    for bad in (0, 5):
        with pytest.raises(ValueError):
            consistency_proof(bad, leaves)


# --- properties ---------------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=300)
digests = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=200), st.data())
def test_property_proofs_of_any_tree_verify_and_match_the_rfc(
    d: list[bytes], draw: st.DataObject
) -> None:
    leaves, n = hashes(d), len(d)
    m = draw.draw(st.integers(0, n - 1), label="leaf")
    old = draw.draw(st.integers(1, n), label="old size")
    head = root(leaves)
    assert head == mth(d)
    assert inclusion_proof(m, leaves) == path(m, d)
    verify_inclusion(leaves[m], m, n, inclusion_proof(m, leaves), head)
    assert consistency_proof(old, leaves) == proof(old, d)
    verify_consistency(old, n, root(leaves[:old]), head, consistency_proof(old, leaves))
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == head


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    leaf=digests,
    index=st.integers(-2, 300),
    size=st.integers(-2, 300),
    audit=st.lists(digests, max_size=10),
    head=digests,
    shape=st.sampled_from(["random", "fitting", "next index", "next size", "flipped"]),
)
def test_property_inclusion_verifier_accepts_exactly_what_the_rfc_recursion_accepts(
    leaf: bytes, index: int, size: int, audit: list[bytes], head: bytes, shape: str
) -> None:
    """Any input: ProofError or success, never another exception, and the same verdict as
    the verifier rebuilt from PATH. A "fitting" path has the length PATH gives and ``head``
    is where it leads; the other shapes then change one thing about it."""
    if shape != "random" and size > 0:
        index %= size
        audit = [_sha(bytes([j]) + leaf) for j in range(path_len(index, size))]
        head = _rebuild_inclusion(leaf, index, size, audit)
        if shape == "next index":
            index += 1
        elif shape == "next size":
            size += 1
        elif shape == "flipped" and audit:
            audit[-1] = flip(audit[-1])
    expected = ref_inclusion_ok(leaf, index, size, audit, head)
    event("accepted" if expected else "refused")
    assert (not refused(verify_inclusion, leaf, index, size, audit, head)) == expected
    if shape == "fitting" and size > 0:
        assert expected


def _rebuild_inclusion(leaf: bytes, m: int, n: int, audit: Sequence[bytes]) -> bytes:
    """The head a path of the right length leads to from leaf ``m`` of ``n``."""
    rest = list(audit)

    def up(m: int, n: int) -> bytes:
        if n == 1:
            return leaf
        k, sibling = _k(n), rest.pop()
        if m < k:
            return _sha(b"\x01" + up(m, k) + sibling)
        return _sha(b"\x01" + sibling + up(m - k, n - k))

    return up(m, n)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    old_size=st.integers(-1, 130),
    new_size=st.integers(-1, 130),
    salt=st.binary(max_size=4),
    mutate=st.sampled_from(["none", "flip", "drop", "extend", "swap", "random"]),
    spare=digests,
)
def test_property_consistency_verifier_accepts_exactly_what_the_rfc_recursion_accepts(
    old_size: int, new_size: int, salt: bytes, mutate: str, spare: bytes
) -> None:
    """Honest and tampered consistency proofs between any sizes: the verifier raises
    ProofError or succeeds, never anything else, with the verdict of the PROOF recursion."""
    leaves = hashes(data(130, salt))
    real_old = max(1, min(old_size, 130))
    real_new = max(real_old, min(new_size, 130))
    cons = consistency_proof(real_old, leaves[:real_new])
    old, new = root(leaves[:real_old]), root(leaves[:real_new])
    if mutate == "flip" and cons:
        cons[0] = flip(cons[0])
    elif mutate == "drop" and cons:
        cons.pop()
    elif mutate == "extend":
        cons.append(spare)
    elif mutate == "swap":
        old, new = new, old
    elif mutate == "random":
        cons = [spare] * len(cons)
    expected = ref_consistency_ok(old_size, new_size, old, new, cons)
    event("accepted" if expected else "refused")
    assert (not refused(verify_consistency, old_size, new_size, old, new, cons)) == expected
    if mutate == "none" and (old_size, new_size) == (real_old, real_new):
        assert expected


def changed(h: bytes, draw: st.DataObject) -> bytes:
    """``h`` with at least one bit of one byte flipped."""
    at = draw.draw(st.integers(0, len(h) - 1), label="byte")
    mask = draw.draw(st.integers(1, 255), label="bits")
    return h[:at] + bytes([h[at] ^ mask]) + h[at + 1 :]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(digests, min_size=2, max_size=100), st.data())
def test_property_any_single_changed_hash_in_a_proof_is_refused(
    leaves: list[bytes], draw: st.DataObject
) -> None:
    n = len(leaves)
    m = draw.draw(st.integers(0, n - 1), label="leaf")
    audit = inclusion_proof(m, leaves)
    x = draw.draw(st.integers(0, len(audit) - 1), label="which hash")
    other = changed(audit[x], draw)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[m], m, n, [*audit[:x], other, *audit[x + 1 :]], root(leaves))
    old = draw.draw(st.integers(1, n - 1), label="old size")
    cons = consistency_proof(old, leaves)
    y = draw.draw(st.integers(0, len(cons) - 1), label="which consistency hash")
    other = changed(cons[y], draw)
    with pytest.raises(ProofError):
        verify_consistency(
            old, n, root(leaves[:old]), root(leaves), [*cons[:y], other, *cons[y + 1 :]]
        )
