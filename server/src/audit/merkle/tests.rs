//! Merkle tree tests: the RFC 6962 test vectors used by Certificate
//! Transparency implementations, and exhaustive proof round trips.

use super::*;

/// The leaves of the CT reference test tree.
fn ct_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        (0x50..0x58).collect(),
        (0x60..0x70).collect(),
    ]
}

const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn hashes(n: usize) -> Vec<Hash> {
    (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

#[test]
fn empty_tree_is_sha256_of_nothing() {
    assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(root(&[]), empty_root());
    assert_eq!(Frontier::default().root(), empty_root());
}

#[test]
fn ct_reference_roots() {
    let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
    let mut frontier = Frontier::default();
    for (n, expected) in CT_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(root(&leaves[..=n])), *expected, "root of {} leaves", n + 1);
        frontier.push(leaves[n]);
        assert_eq!(hex::encode(frontier.root()), *expected, "frontier root of {} leaves", n + 1);
    }
}

#[test]
fn ct_reference_inclusion_path_of_leaf_0_in_8() {
    let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
    let proof = inclusion_proof(&leaves, 0).unwrap();
    let proof: Vec<String> = proof.iter().map(hex::encode).collect();
    assert_eq!(
        proof,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
    );
}

#[test]
fn frontier_matches_recursive_root_for_every_size() {
    let leaves = hashes(300);
    let mut frontier = Frontier::default();
    for n in 0..leaves.len() {
        assert_eq!(frontier.root(), root(&leaves[..n]), "size {n}");
        assert_eq!(frontier.nodes.len() as u32, (n as u64).count_ones(), "size {n}");
        frontier.push(leaves[n]);
    }
}

#[test]
fn every_inclusion_proof_verifies_and_tampering_fails() {
    let all = hashes(40);
    for size in 1..=all.len() {
        let leaves = &all[..size];
        let head = root(leaves);
        for index in 0..size as u64 {
            let proof = inclusion_proof(leaves, index).unwrap();
            let leaf = &leaves[index as usize];
            assert!(verify_inclusion(index, size as u64, leaf, &proof, &head), "{index} in {size}");
            assert!(!verify_inclusion(index, size as u64, &leaf_hash(b"other"), &proof, &head));
            if size > 1 {
                assert!(!verify_inclusion(index ^ 1, size as u64, leaf, &proof, &head) || index ^ 1 >= size as u64);
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                assert!(!verify_inclusion(index, size as u64, leaf, &bad, &head));
                assert!(!verify_inclusion(index, size as u64, leaf, &proof[1..], &head));
            }
        }
    }
    assert_eq!(inclusion_proof(&all[..3], 3), Err(ProveError::IndexOutOfRange { index: 3, size: 3 }));
}

#[test]
fn every_consistency_proof_verifies_and_tampering_fails() {
    let all = hashes(40);
    for second in 1..=all.len() {
        let second_root = root(&all[..second]);
        for first in 1..=second {
            let first_root = root(&all[..first]);
            let proof = consistency_proof(&all[..second], first as u64).unwrap();
            let (m, n) = (first as u64, second as u64);
            assert!(verify_consistency(m, n, &first_root, &second_root, &proof), "{first} -> {second}");
            assert!(!verify_consistency(m, n, &leaf_hash(b"x"), &second_root, &proof));
            assert!(!verify_consistency(m, n, &first_root, &leaf_hash(b"x"), &proof));
            if let Some((head, _)) = proof.split_first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(head, head);
                assert!(!verify_consistency(m, n, &first_root, &second_root, &bad), "{first} -> {second}");
            }
        }
    }
    // A history rewritten after leaf 10 is not consistent with the old head.
    let mut rewritten = all.clone();
    rewritten[12] = leaf_hash(b"rewritten");
    let proof = consistency_proof(&rewritten, 20).unwrap();
    assert!(!verify_consistency(20, 40, &root(&all[..20]), &root(&rewritten), &proof));
    assert_eq!(consistency_proof(&all[..3], 4), Err(ProveError::BadSizes { first: 4, second: 3 }));
}
