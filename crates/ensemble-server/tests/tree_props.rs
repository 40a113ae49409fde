//! Property tests of the data tree: applying the same random transactions to two
//! trees gives identical trees and results, snapshots restore identical trees, and
//! structural invariants (the digest and data size among them) hold after every step, and transactions survive their
//! trip through the binary form the replicated log carries.

use ensemble_server::protocol::{Acl, ErrorCode, Id, Reader, Writer};
use ensemble_server::tree::snapshot::{restore, snapshot, Progress};
use ensemble_server::tree::{CreateKind, DataTree, NodeKind, Origin, Outcome, TreeOptions, Txn};
use proptest::collection::vec;
use proptest::prelude::*;

const SESSIONS: [i64; 3] = [
    0x0100_0000_0000_0001,
    0x0100_0000_0000_0002,
    0x0100_0000_0000_0003,
];

/// Paths from a small alphabet, so ops often collide.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..4).prop_map(|s| format!("/{}", s.join("/"))),
        1 => Just("/".to_owned()),
        1 => Just("/zookeeper".to_owned()),
        1 => Just("/a/".to_owned()),
    ]
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    prop_oneof![
        4 => Just(Acl::open_unsafe()),
        1 => Just(Acl::read_unsafe()),
        1 => Just(vec![]),
        1 => Just(vec![Acl::new(31, Id::new("auth", ""))]),
    ]
}

fn op() -> impl Strategy<Value = Txn> {
    let version = prop_oneof![3 => Just(-1), 1 => 0..3i32];
    prop_oneof![
        4 => (path(), acl(), 0..8i32, prop_oneof![
                Just((CreateKind::Regular, None)),
                Just((CreateKind::Container, None)),
                (1..100i64).prop_map(|t| (CreateKind::Ttl, Some(t))),
             ])
            .prop_map(|(path, acl, flags, (kind, ttl))| Txn::Create {
                path, data: Some(b"x".to_vec()), acl, flags, kind, ttl,
            }),
        2 => (path(), version.clone()).prop_map(|(path, version)| Txn::Delete { path, version }),
        2 => (path(), version.clone(), vec(any::<u8>(), 0..4)).prop_map(|(path, version, d)| {
            Txn::SetData { path, data: Some(d), version }
        }),
        1 => (path(), acl(), version.clone()).prop_map(|(path, acl, version)| Txn::SetAcl { path, acl, version }),
        1 => (path(), version).prop_map(|(path, version)| Txn::Check { path, version }),
    ]
}

fn txn() -> impl Strategy<Value = (usize, Txn)> {
    let session = 0..SESSIONS.len();
    prop_oneof![
        8 => (session.clone(), op()),
        2 => (session.clone(), vec(op(), 0..5).prop_map(Txn::Multi)),
        1 => session.clone().prop_map(|s| (s, Txn::CloseSession { session_id: SESSIONS[s] })),
        1 => session.clone().prop_map(|s| (s, Txn::CreateSession { session_id: SESSIONS[s], timeout_ms: 4000 })),
        1 => (session, path()).prop_map(|(s, path)| (s, Txn::DeleteContainer { path })),
    ]
}

fn origin(session: usize) -> Origin {
    let digest = Id::new("digest", format!("user{session}:hash"));
    Origin::session(SESSIONS[session], vec![Id::new("ip", "127.0.0.1"), digest])
}

fn fresh() -> DataTree {
    let mut tree = DataTree::new(TreeOptions { ttl_enabled: true });
    for (i, s) in SESSIONS.iter().enumerate() {
        tree.apply(
            i as i64 + 1,
            0,
            &Origin::system(),
            &Txn::CreateSession {
                session_id: *s,
                timeout_ms: 4000,
            },
        );
    }
    tree
}

/// A fresh tree after `txns`, applied at zxids 11, 12, ..., and the last zxid used.
fn applied(txns: &[(usize, Txn)]) -> (DataTree, i64) {
    let mut tree = fresh();
    let mut zxid = 10;
    for (session, txn) in txns {
        zxid += 1;
        tree.apply(zxid, zxid, &origin(*session), txn);
    }
    (tree, zxid)
}

/// Invariants that must hold in every reachable tree.
fn check_invariants(tree: &DataTree) -> Result<(), TestCaseError> {
    let mut count = 0usize;
    for (path, node) in tree.nodes() {
        count += 1;
        let stat = node.stat();
        prop_assert_eq!(stat.num_children as usize, node.children.len());
        for child in &node.children {
            let child_path = if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            };
            prop_assert!(
                tree.node(&child_path).is_some(),
                "dangling child {}",
                child_path
            );
        }
        if let NodeKind::Ephemeral(owner) = node.kind() {
            prop_assert!(node.children.is_empty(), "ephemeral {} has children", path);
            prop_assert!(
                tree.sessions().contains_key(&owner),
                "orphan ephemeral {}",
                path
            );
            prop_assert!(tree.ephemerals(owner).contains(path));
        }
        prop_assert!(stat.mzxid >= stat.czxid && stat.pzxid >= stat.czxid);
    }
    prop_assert_eq!(tree.all_children_number("/"), Some(count as i32 - 1));
    for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        prop_assert!(tree.node(path).is_some(), "system node {} missing", path);
    }
    prop_assert_eq!(
        tree.sums(),
        tree.whole_sums(),
        "the digest and data size kept as transactions apply are those of every node"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_txns_give_same_trees(txns in vec(txn(), 1..40)) {
        let mut a = fresh();
        let mut b = fresh();
        let mut zxid = 10;
        for (session, txn) in &txns {
            zxid += 1;
            let origin = origin(*session);
            let ra = a.apply(zxid, zxid * 7, &origin, txn);
            let rb = b.apply(zxid, zxid * 7, &origin, txn);
            prop_assert_eq!(&ra, &rb);
            if let Txn::Multi(ops) = txn {
                if let Outcome::MultiFailed(codes) = &ra.outcome {
                    prop_assert_eq!(codes.len(), ops.len());
                    prop_assert!(ra.events.is_empty());
                    let failed = codes.iter().position(|c| *c != ErrorCode::Ok);
                    let failed = failed.expect("a failed multi names its failing op");
                    prop_assert!(codes[failed + 1..].iter().all(|c| *c == ErrorCode::RuntimeInconsistency));
                }
            }
            check_invariants(&a)?;
        }
        prop_assert_eq!(&a, &b);
        let bytes = snapshot(&a);
        let restored = restore(&bytes, a.options()).expect("snapshot restores");
        prop_assert_eq!(&restored, &a);
        prop_assert_eq!(snapshot(&restored), bytes);
    }

    #[test]
    fn failed_multi_leaves_tree_unchanged(setup in vec(txn(), 0..20), ops in vec(op(), 1..6)) {
        let (mut tree, mut zxid) = applied(&setup);
        let before = snapshot(&tree);
        zxid += 1;
        let result = tree.apply(zxid, zxid, &origin(0), &Txn::Multi(ops));
        if let Outcome::MultiFailed(_) = result.outcome {
            let mut expected = restore(&before, tree.options()).expect("restores");
            // Only the applied zxid moves.
            let bytes = snapshot(&tree);
            prop_assert_eq!(&bytes[..8], &before[..8]);
            prop_assert_eq!(&bytes[16..], &before[16..]);
            expected.apply(zxid, zxid, &Origin::system(), &Txn::Multi(vec![]));
            prop_assert_eq!(&tree, &expected);
        }
    }

    /// A snapshot written a few nodes at a time, with transactions applied between
    /// the steps, comes out exactly as a whole snapshot taken when it began.
    #[test]
    fn a_snapshot_taken_in_steps_is_the_tree_as_it_began(
        setup in vec(txn(), 0..30),
        during in vec((txn(), 0..4usize), 0..40),
    ) {
        let (mut tree, mut zxid) = applied(&setup);
        let expected = snapshot(&tree);
        prop_assert_eq!(tree.begin_snapshot(), tree.last_zxid());
        let mut bytes = Vec::new();
        let mut finished = false;
        for ((session, txn), step) in &during {
            zxid += 1;
            tree.apply(zxid, zxid, &origin(*session), txn);
            check_invariants(&tree)?;
            if !finished {
                match tree.continue_snapshot(*step) {
                    Progress::Pending(piece) => bytes.extend(piece),
                    Progress::Done(piece) => {
                        bytes.extend(piece);
                        finished = true;
                    }
                    Progress::Idle => prop_assert!(false, "the snapshot went missing"),
                }
            }
        }
        if !finished {
            match tree.continue_snapshot(usize::MAX) {
                Progress::Done(piece) => bytes.extend(piece),
                other => return Err(TestCaseError::fail(format!("not finished: {other:?}"))),
            }
        }
        prop_assert_eq!(&bytes, &expected);
        prop_assert!(!tree.snapshot_under_way());
        prop_assert_eq!(tree.continue_snapshot(1), Progress::Idle);
    }

    #[test]
    fn restore_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        let _ = restore(&bytes, TreeOptions::default());
    }

    /// The binary form of a transaction and its origin reads back as the same, and
    /// every cut-short form is refused.
    #[test]
    fn transactions_round_trip((session, txn) in txn()) {
        let origin = origin(session);
        let mut w = Writer::new();
        origin.write(&mut w);
        txn.write(&mut w);
        let bytes = w.into_bytes();
        let read = |bytes: &[u8]| {
            let mut r = Reader::new(bytes);
            let origin = Origin::read(&mut r)?;
            let txn = Txn::read(&mut r)?;
            r.finish()?;
            Ok::<_, ensemble_server::protocol::DecodeError>((origin, txn))
        };
        prop_assert_eq!(read(&bytes), Ok((origin, txn)));
        for cut in 0..bytes.len() {
            prop_assert!(read(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn transaction_decode_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        let _ = Txn::read(&mut Reader::new(&bytes));
    }
}
