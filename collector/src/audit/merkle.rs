//! The Merkle tree of RFC 6962 / RFC 9162 over the audit entries (the first part of
//! consent proofs a regulator can check, issue 14; not yet wired to the trail): leaf
//! hash `SHA-256(0x00 ‖ leaf)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, the tree head
//! of any size, inclusion and consistency proofs and their verification (RFC 9162
//! §2.1.3.2 and §2.1.4.2), and a [`Frontier`] that extends the head as entries are
//! appended without recomputing the tree.
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

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The tree head (MTH) of the leaves' hashes; the hash of the empty string for none.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `m` in the tree of `leaves` (RFC 6962 PATH), leaf to root.
pub fn inclusion_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || m >= n {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = inclusion_proof(m, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

/// The consistency proof from the tree of the first `m` leaves to the tree of all of
/// them (RFC 6962 PROOF); empty when `m` is 0 or the whole.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole {
                Vec::new()
            } else {
                vec![root(leaves)]
            };
        }
        let k = split(n);
        if m <= k {
            let mut p = subproof(m, &leaves[..k], whole);
            p.push(root(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(root(&leaves[..k]));
            p
        }
    }
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
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

    /// Appends a leaf by its hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per set bit");
            h = node_hash(&left, &h);
            size >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The tree head (MTH) of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => Sha256::digest([]).into(),
            Some(last) => it.fold(*last, |acc, p| node_hash(p, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                f.push(leaves[n]);
            }
        }
    }
}
