//! The Merkle tree of RFC 6962 / RFC 9162 over the audit entries: leaf hash
//! `SHA-256(0x00 ‖ leaf)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, inclusion and
//! consistency proofs as the spans of leaves whose heads make them, their verification
//! (RFC 9162 §2.1.3.2 and §2.1.4.2), and a [`Frontier`] that extends the head as entries
//! are appended without recomputing the tree. Pure: `proofs` stores and reads the nodes.
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A run of leaves `[start, end)` whose subtree head is one hash of a proof.
pub type Span = (u64, u64);

/// The largest power of two smaller than `n` (n ≥ 2), for sizes.
fn split64(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The spans whose heads make the audit path of leaf `index` in a tree of `size` leaves
/// (RFC 6962 PATH), leaf to root; empty for a tree of one leaf or an index outside it.
pub fn inclusion_spans(index: u64, size: u64) -> Vec<Span> {
    fn path(m: u64, start: u64, end: u64, out: &mut Vec<Span>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split64(n);
        if m < start + k {
            path(m, start, start + k, out);
            out.push((start + k, end));
        } else {
            path(m, start + k, end, out);
            out.push((start, start + k));
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, &mut out);
    }
    out
}

/// The spans whose heads make the consistency proof from the tree of the first `m`
/// leaves to the tree of `n` (RFC 6962 PROOF); empty when `m` is 0 or `n`.
pub fn consistency_spans(m: u64, n: u64) -> Vec<Span> {
    fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Span>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push((start, end));
            }
            return;
        }
        let k = split64(n);
        if m <= k {
            subproof(m, start, start + k, whole, out);
            out.push((start + k, end));
        } else {
            subproof(m - k, start + k, end, false, out);
            out.push((start, start + k));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < n {
        subproof(m, 0, n, true, &mut out);
    }
    out
}

/// The complete subtrees `(level, index)` (the node at `level` and `index` heads leaves
/// `index·2^level .. (index+1)·2^level`) whose heads, folded with [`fold`], give the head
/// of `span`: one node for a complete subtree, one per set bit of its length otherwise.
/// Valid for the spans of the proofs above and for `(0, size)`: those start at a
/// multiple of a power of two at least their length.
pub fn span_nodes((start, end): Span) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut at = start;
    let len = end - start;
    for level in (0..64u32).rev() {
        if len >> level & 1 == 1 {
            out.push((level, at >> level));
            at += 1 << level;
        }
    }
    out
}

/// The head of a span from the heads of its [`span_nodes`], largest first (RFC 6962 MTH:
/// the left part is always the largest complete subtree).
pub fn fold(heads: &[Hash]) -> Hash {
    let mut it = heads.iter().rev();
    match it.next() {
        None => Sha256::digest([]).into(),
        Some(last) => it.fold(*last, |acc, p| node_hash(p, &acc)),
    }
}

/// Whether `proof` shows the leaf hashed `leaf` at `index` in a tree of `size` whose
/// head is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// Whether `proof` shows that the tree of `size2` with head `root2` extends the tree of
/// `size1` with head `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &fr == root1 && &sr == root2
}

/// The right edge of a growing tree: the heads of its complete subtrees, largest first,
/// so that appending a leaf and computing the head take O(log n) hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One head per set bit of `size`, from the highest bit down.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves with these peaks (as stored).
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The heads of the complete subtrees, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf by its hash; returns the complete subtrees it completes, as
    /// `(level, index, head)`, the leaf itself first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut h = leaf;
        let mut size = self.size;
        let mut level = 0;
        let mut done = vec![(0, self.size, leaf)];
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per set bit");
            h = node_hash(&left, &h);
            size >>= 1;
            level += 1;
            done.push((level, size, h));
        }
        self.peaks.push(h);
        self.size += 1;
        done
    }

    /// The tree head (MTH) of the leaves so far.
    pub fn root(&self) -> Hash {
        fold(&self.peaks)
    }

    /// Where the peaks of a tree of `size` leaves are stored: `(level, index)`, largest
    /// first.
    pub fn peak_nodes(size: u64) -> Vec<(u32, u64)> {
        span_nodes((0, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree head (MTH) of the leaves, recomputed from RFC 6962's definition: the
    /// reference the spans, the frontier and the stored subtrees are checked against.
    fn root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split64(n as u64) as usize;
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The leaves of the reference tree in RFC 6962's reference tests (Certificate
    /// Transparency's `merkle_tree_test`).
    fn reference_leaves() -> Vec<Hash> {
        let raw: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        raw.iter().map(|l| leaf_hash(l)).collect()
    }

    fn head_of(leaves: &[Hash], (a, b): Span) -> Hash {
        root(&leaves[a as usize..b as usize])
    }

    fn inclusion_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        inclusion_spans(m as u64, leaves.len() as u64)
            .into_iter()
            .map(|s| head_of(leaves, s))
            .collect()
    }

    fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        consistency_spans(m as u64, leaves.len() as u64)
            .into_iter()
            .map(|s| head_of(leaves, s))
            .collect()
    }

    /// A span's head from the stored complete subtrees, as the trail computes it.
    fn from_nodes(leaves: &[Hash], span: Span) -> Hash {
        let heads: Vec<Hash> = span_nodes(span)
            .into_iter()
            .map(|(level, i)| head_of(leaves, (i << level, (i + 1) << level)))
            .collect();
        fold(&heads)
    }

    #[test]
    fn span_heads_from_complete_subtrees_equal_the_recomputed_ones() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        for n in 1..=leaves.len() as u64 {
            assert_eq!(from_nodes(&leaves, (0, n)), head_of(&leaves, (0, n)));
            for m in 0..=n {
                for s in inclusion_spans(m, n)
                    .into_iter()
                    .chain(consistency_spans(m, n))
                {
                    assert_eq!(from_nodes(&leaves, s), head_of(&leaves, s), "{s:?} of {n}");
                }
            }
        }
    }

    #[test]
    fn heads_match_the_reference_values() {
        let leaves = reference_leaves();
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&root(&leaves[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex(&root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn the_frontier_gives_every_head_and_proofs_verify_for_every_size() {
        let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut f = Frontier::default();
        for n in 0..=leaves.len() {
            assert_eq!(f.root(), root(&leaves[..n]), "size {n}");
            let back = Frontier::from_parts(f.size(), f.peaks().to_vec()).unwrap();
            assert_eq!(back, f);
            let tree = &leaves[..n];
            let head = root(tree);
            for m in 0..n {
                let p = inclusion_proof(m, tree);
                assert!(p.len() <= 64 - (n as u64).leading_zeros() as usize);
                assert!(
                    verify_inclusion(m as u64, n as u64, &tree[m], &p, &head),
                    "{m} in {n}"
                );
                // Another leaf, index or size does not verify.
                let other = leaf_hash(b"not in the tree");
                assert!(!verify_inclusion(m as u64, n as u64, &other, &p, &head));
                if n > 1 {
                    let wrong = (m + 1) % n;
                    if tree[wrong] != tree[m] {
                        assert!(!verify_inclusion(
                            wrong as u64,
                            n as u64,
                            &tree[m],
                            &p,
                            &head
                        ));
                    }
                }
            }
            for m in 0..=n {
                let p = consistency_proof(m, tree);
                let old = root(&tree[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &p, &old, &head),
                    "{m} → {n}"
                );
                if m > 0 && m < n {
                    let forged = leaf_hash(b"forged");
                    assert!(!verify_consistency(m as u64, n as u64, &p, &forged, &head));
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_consistency(m as u64, n as u64, &bad, &old, &head));
                }
            }
            if n < leaves.len() {
                let done = f.push(leaves[n]);
                // What the push completes is exactly what a stored tree keeps.
                for (level, i, h) in done {
                    assert_eq!(h, head_of(&leaves, (i << level, (i + 1) << level)));
                    assert_eq!((i + 1) << level, n as u64 + 1);
                }
                let peaks: Vec<Hash> = Frontier::peak_nodes(f.size())
                    .into_iter()
                    .map(|(level, i)| head_of(&leaves, (i << level, (i + 1) << level)))
                    .collect();
                assert_eq!(peaks, f.peaks());
            }
        }
    }
}
