//! Unit tests of the data tree, checked against ZooKeeper's behaviour.

use super::*;
use crate::protocol::{perms, Id};

const S1: i64 = 0x0100_0000_0000_0001;
const S2: i64 = 0x0100_0000_0000_0002;

struct Harness {
    tree: DataTree,
    zxid: i64,
}

impl Harness {
    fn new() -> Self {
        Self::with(TreeOptions::default())
    }

    fn with(options: TreeOptions) -> Self {
        let mut h = Self {
            tree: DataTree::new(options),
            zxid: 0,
        };
        for s in [S1, S2] {
            h.run(
                &Origin::system(),
                Txn::CreateSession {
                    session_id: s,
                    timeout_ms: 30_000,
                },
            );
        }
        h
    }

    fn run(&mut self, origin: &Origin, txn: Txn) -> TxnResult {
        self.zxid += 1;
        self.tree.apply(self.zxid, 1000 * self.zxid, origin, &txn)
    }

    fn s1(&mut self, txn: Txn) -> TxnResult {
        self.run(&Origin::session(S1, vec![]), txn)
    }

    fn code(&mut self, txn: Txn) -> ErrorCode {
        self.s1(txn).outcome.code()
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree.stat(path).expect("node exists")
    }
}

fn create(path: &str, flags: i32) -> Txn {
    Txn::Create {
        path: path.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        kind: CreateKind::Regular,
        ttl: None,
    }
}

fn delete(path: &str, version: i32) -> Txn {
    Txn::Delete {
        path: path.into(),
        version,
    }
}

fn set_data(path: &str, data: &[u8], version: i32) -> Txn {
    Txn::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

fn created_path(r: &TxnResult) -> String {
    match &r.outcome {
        Outcome::Done(Done::Created { path, .. }) => path.clone(),
        other => panic!("not created: {other:?}"),
    }
}

#[test]
fn system_nodes_match_a_fresh_zookeeper() {
    let t = DataTree::default();
    assert_eq!(t.children("/"), Some(vec!["zookeeper".to_owned()]));
    assert_eq!(
        t.children("/zookeeper"),
        Some(vec!["config".to_owned(), "quota".to_owned()])
    );
    // `stat /` on a fresh ZooKeeper shows cversion -1 and numChildren 1.
    let root = t.stat("/").expect("root");
    assert_eq!((root.cversion, root.num_children, root.czxid), (-1, 1, 0));
    let config = t.node(CONFIG_NODE).expect("config");
    assert_eq!(config.acl, Acl::read_unsafe());
    assert_eq!(config.stat().aversion, -1);
    assert_eq!(t.all_children_number("/"), Some(3));
    assert_eq!(t.all_children_number("/zookeeper"), Some(2));
}

#[test]
fn create_sets_stat_and_parent() {
    let mut h = Harness::new();
    let r = h.s1(create("/a", 0));
    let zxid = h.zxid;
    match &r.outcome {
        Outcome::Done(Done::Created { path, stat }) => {
            assert_eq!(path, "/a");
            assert_eq!(stat.czxid, zxid);
            assert_eq!(stat.mzxid, zxid);
            assert_eq!(stat.pzxid, zxid);
            assert_eq!(stat.ctime, 1000 * zxid);
            assert_eq!(stat.data_length, 1);
            assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.events,
        vec![
            WatchEvent::new(EventType::NodeCreated, "/a"),
            WatchEvent::new(EventType::NodeChildrenChanged, "/"),
        ]
    );
    let root = h.stat("/");
    assert_eq!((root.cversion, root.num_children, root.pzxid), (0, 2, zxid));
}

#[test]
fn cversion_counts_creates_and_deletes_and_names_sequentials() {
    let mut h = Harness::new();
    h.s1(create("/p", 0));
    assert_eq!(created_path(&h.s1(create("/p/s-", 2))), "/p/s-0000000000");
    assert_eq!(created_path(&h.s1(create("/p/s-", 2))), "/p/s-0000000001");
    h.s1(delete("/p/s-0000000000", -1));
    let del_zxid = h.zxid;
    let p = h.stat("/p");
    assert_eq!((p.cversion, p.num_children, p.pzxid), (3, 1, del_zxid));
    // The suffix counts creations only (ZooKeeper's stored cversion).
    assert_eq!(created_path(&h.s1(create("/p/s-", 2))), "/p/s-0000000002");
    assert_eq!(h.stat("/p").cversion, 4);
    // A sequential node directly under a path ending in '/' is valid, as in ZooKeeper.
    assert_eq!(created_path(&h.s1(create("/p/", 2))), "/p/0000000003");
}

#[test]
fn create_errors_in_zookeeper_order() {
    let mut h = Harness::with(TreeOptions { ttl_enabled: false });
    h.s1(create("/a", 0));
    h.s1(create("/e", 1));
    let cases: Vec<(Txn, ErrorCode)> = vec![
        (create("/x", 7), ErrorCode::BadArguments),
        (create("/x", 5), ErrorCode::Unimplemented),
        (create("x", 0), ErrorCode::BadArguments),
        (create("/a/\0", 0), ErrorCode::BadArguments),
        (create("/missing/x", 0), ErrorCode::NoNode),
        // Parent lookup comes before path validation.
        (create("/missing/", 0), ErrorCode::NoNode),
        (create("/a/", 0), ErrorCode::BadArguments),
        (create("/a/.", 0), ErrorCode::BadArguments),
        (create("/a", 0), ErrorCode::NodeExists),
        (create("/", 0), ErrorCode::NodeExists),
        (create("/zookeeper", 0), ErrorCode::NodeExists),
        (create("/e/c", 0), ErrorCode::NoChildrenForEphemerals),
        (
            Txn::Create {
                path: "/x".into(),
                data: None,
                acl: vec![],
                flags: 0,
                kind: CreateKind::Regular,
                ttl: None,
            },
            ErrorCode::InvalidAcl,
        ),
    ];
    for (txn, code) in cases {
        assert_eq!(h.code(txn.clone()), code, "{txn:?}");
    }
}

#[test]
fn writes_need_a_live_session() {
    let mut h = Harness::new();
    let ghost = Origin::session(0x0100_0000_0000_0099, vec![]);
    assert_eq!(
        h.run(&ghost, create("/x", 0)).outcome.code(),
        ErrorCode::SessionExpired
    );
    // The server's own origin needs no session, but cannot own ephemerals.
    assert_eq!(
        h.run(&Origin::system(), create("/x", 0)).outcome.code(),
        ErrorCode::Ok
    );
    assert_eq!(
        h.run(&Origin::system(), create("/y", 1)).outcome.code(),
        ErrorCode::SessionExpired
    );
}

#[test]
fn delete_set_check_errors() {
    let mut h = Harness::new();
    h.s1(create("/a", 0));
    h.s1(create("/a/b", 0));
    let cases: Vec<(Txn, ErrorCode)> = vec![
        (delete("/", -1), ErrorCode::BadArguments),
        (delete("/zookeeper", -1), ErrorCode::BadArguments),
        (delete("/zookeeper/config", -1), ErrorCode::BadArguments),
        (delete("nope", -1), ErrorCode::BadArguments),
        (delete("/missing/x", -1), ErrorCode::NoNode),
        (delete("/a/", -1), ErrorCode::NoNode),
        (delete("/a", 5), ErrorCode::BadVersion),
        (delete("/a", -1), ErrorCode::NotEmpty),
        (set_data("/a/", b"", -1), ErrorCode::BadArguments),
        (set_data("/nope", b"", -1), ErrorCode::NoNode),
        (set_data("/a", b"", 3), ErrorCode::BadVersion),
        (
            Txn::Check {
                path: "/a".into(),
                version: 1,
            },
            ErrorCode::BadVersion,
        ),
        (
            Txn::Check {
                path: "/nope".into(),
                version: -1,
            },
            ErrorCode::NoNode,
        ),
        (
            Txn::SetAcl {
                path: "/a".into(),
                acl: vec![],
                version: -1,
            },
            ErrorCode::InvalidAcl,
        ),
        (
            Txn::SetAcl {
                path: "/a".into(),
                acl: Acl::open_unsafe(),
                version: 4,
            },
            ErrorCode::BadVersion,
        ),
        // /zookeeper/config is read-only for everyone.
        (set_data(CONFIG_NODE, b"x", -1), ErrorCode::NoAuth),
    ];
    for (txn, code) in cases {
        assert_eq!(h.code(txn.clone()), code, "{txn:?}");
    }
}

#[test]
fn set_data_and_set_acl_stats() {
    let mut h = Harness::new();
    h.s1(create("/a", 0));
    let czxid = h.zxid;
    let r = h.s1(set_data("/a", b"hello", 0));
    let Outcome::Done(Done::DataSet(stat)) = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!((stat.version, stat.mzxid, stat.czxid), (1, h.zxid, czxid));
    assert_eq!(stat.mtime, 1000 * h.zxid);
    assert_eq!(stat.data_length, 5);
    assert_eq!(
        r.events,
        vec![WatchEvent::new(EventType::NodeDataChanged, "/a")]
    );
    let r = h.s1(Txn::SetAcl {
        path: "/a".into(),
        acl: Acl::read_unsafe(),
        version: 0,
    });
    let Outcome::Done(Done::AclSet(stat)) = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!((stat.aversion, stat.version), (1, 1));
    assert!(r.events.is_empty());
    // Now only READ is granted.
    assert_eq!(h.code(set_data("/a", b"x", -1)), ErrorCode::NoAuth);
    assert_eq!(
        h.code(Txn::Check {
            path: "/a".into(),
            version: 1
        }),
        ErrorCode::Ok
    );
}

#[test]
fn version_wraps_and_skips_minus_one() {
    assert_eq!(check_version(i32::MAX, -1), Ok(i32::MIN));
    assert_eq!(check_version(-2, -2), Ok(0));
    assert_eq!(check_version(3, 3), Ok(4));
    assert_eq!(check_version(3, 2), Err(ErrorCode::BadVersion));
}

#[test]
fn null_data_stays_null() {
    let mut h = Harness::new();
    h.s1(Txn::Create {
        path: "/n".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
        kind: CreateKind::Regular,
        ttl: None,
    });
    let node = h.tree.node("/n").expect("node");
    assert_eq!(node.data, None);
    assert_eq!(node.stat().data_length, 0);
}

#[test]
fn acl_checks_on_writes() {
    let mut h = Harness::new();
    let bob = Id::new("digest", acl::digest_id("bob:pw"));
    let as_bob = Origin::session(S2, vec![Id::new("ip", "127.0.0.1"), bob.clone()]);
    let r = h.run(
        &as_bob,
        Txn::Create {
            path: "/b".into(),
            data: None,
            acl: vec![Acl::new(perms::ALL, Id::new("auth", ""))],
            flags: 0,
            kind: CreateKind::Regular,
            ttl: None,
        },
    );
    assert_eq!(r.outcome.code(), ErrorCode::Ok);
    assert_eq!(
        h.tree.node("/b").expect("node").acl,
        vec![Acl::new(perms::ALL, bob)]
    );
    assert_eq!(h.code(create("/b/c", 0)), ErrorCode::NoAuth);
    assert_eq!(h.code(set_data("/b", b"", -1)), ErrorCode::NoAuth);
    assert_eq!(
        h.run(&as_bob, create("/b/c", 0)).outcome.code(),
        ErrorCode::Ok
    );
    // Delete needs DELETE on the parent.
    assert_eq!(h.code(delete("/b/c", -1)), ErrorCode::NoAuth);
    let super_user = Origin::session(S1, vec![Id::new("super", "")]);
    assert_eq!(
        h.run(&super_user, delete("/b/c", -1)).outcome.code(),
        ErrorCode::Ok
    );
}

#[test]
fn ephemerals_are_removed_with_their_session() {
    let mut h = Harness::new();
    h.s1(create("/p", 0));
    let e1 = created_path(&h.s1(create("/p/e-", 3)));
    h.s1(create("/e", 1));
    h.run(&Origin::session(S2, vec![]), create("/p/other", 1));
    assert_eq!(h.stat("/e").ephemeral_owner, S1);
    assert_eq!(h.tree.ephemerals(S1), vec!["/e".to_owned(), e1.clone()]);
    let r = h.run(&Origin::system(), Txn::CloseSession { session_id: S1 });
    assert_eq!(
        r.outcome,
        Outcome::Done(Done::SessionClosed {
            deleted: vec!["/e".to_owned(), e1.clone()]
        })
    );
    assert!(r
        .events
        .contains(&WatchEvent::new(EventType::NodeDeleted, e1.as_str())));
    assert!(h.tree.node("/e").is_none());
    assert_eq!(h.tree.children("/p"), Some(vec!["other".to_owned()]));
    assert_eq!(h.stat("/p").pzxid, h.zxid);
    assert!(h.tree.ephemerals(S1).is_empty());
    assert!(!h.tree.sessions().contains_key(&S1));
    assert_eq!(h.code(create("/x", 0)), ErrorCode::SessionExpired);
}

#[test]
fn multi_success_applies_in_order() {
    let mut h = Harness::new();
    let r = h.s1(Txn::Multi(vec![
        create("/m", 0),
        create("/m/c", 2),
        set_data("/m", b"x", 0),
        Txn::Check {
            path: "/m".into(),
            version: 1,
        },
        delete("/m/c0000000000", -1),
    ]));
    let Outcome::Done(Done::Multi(results)) = &r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(results.len(), 5);
    assert!(matches!(&results[1], Done::Created { path, .. } if path == "/m/c0000000000"));
    assert_eq!(r.events.len(), 2 + 2 + 1 + 2);
    // Every op of a multi has the same zxid.
    let m = h.stat("/m");
    assert_eq!(
        (m.czxid, m.mzxid, m.pzxid, m.cversion),
        (h.zxid, h.zxid, h.zxid, 2)
    );
}

#[test]
fn failed_multi_changes_nothing_and_reports_like_zookeeper() {
    let mut h = Harness::new();
    h.s1(create("/a", 0));
    h.s1(create("/e", 1));
    let before = h.tree.clone();
    let r = h.s1(Txn::Multi(vec![
        create("/b", 0),
        set_data("/a", b"x", -1),
        create("/e2", 1),
        delete("/e", -1),
        delete("/missing", -1),
        create("/c", 0),
    ]));
    assert_eq!(
        r.outcome,
        Outcome::MultiFailed(vec![
            ErrorCode::Ok,
            ErrorCode::Ok,
            ErrorCode::Ok,
            ErrorCode::Ok,
            ErrorCode::NoNode,
            ErrorCode::RuntimeInconsistency,
        ])
    );
    assert_eq!(r.outcome.code(), ErrorCode::NoNode);
    assert!(r.events.is_empty());
    let mut expected = before;
    expected.last_zxid = h.zxid;
    assert_eq!(h.tree, expected);
    assert_eq!(h.tree.ephemerals(S1), vec!["/e".to_owned()]);
}

#[test]
fn multi_rejects_nested_and_session_ops() {
    let mut h = Harness::new();
    let r = h.s1(Txn::Multi(vec![create("/a", 0), Txn::Multi(vec![])]));
    assert_eq!(
        r.outcome,
        Outcome::MultiFailed(vec![ErrorCode::Ok, ErrorCode::BadArguments])
    );
    assert!(h.tree.node("/a").is_none());
    assert_eq!(
        h.s1(Txn::Multi(vec![])).outcome,
        Outcome::Done(Done::Multi(vec![]))
    );
}

#[test]
fn containers_and_ttls() {
    let mut h = Harness::with(TreeOptions { ttl_enabled: true });
    let container = Txn::Create {
        path: "/c".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
        kind: CreateKind::Container,
        ttl: None,
    };
    assert_eq!(h.code(container), ErrorCode::Ok);
    assert_eq!(h.stat("/c").ephemeral_owner, 0);
    assert_eq!(h.tree.node("/c").map(Node::kind), Some(NodeKind::Container));
    // A container that never had children is not a candidate.
    assert!(h.tree.expired_nodes(i64::MAX, 0).is_empty());
    h.s1(create("/c/x", 0));
    h.s1(delete("/c/x", -1));
    assert_eq!(
        h.tree.expired_nodes(h.zxid * 1000, 0),
        vec!["/c".to_owned()]
    );

    let ttl = |ttl: i64, flags: i32| Txn::Create {
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags,
        kind: CreateKind::Ttl,
        ttl: Some(ttl),
    };
    assert_eq!(h.code(ttl(0, 5)), ErrorCode::BadArguments);
    assert_eq!(h.code(ttl(MAX_TTL_MS + 1, 5)), ErrorCode::BadArguments);
    assert_eq!(h.code(ttl(10, 0)), ErrorCode::BadArguments);
    assert_eq!(h.code(ttl(500, 5)), ErrorCode::Ok);
    assert_eq!(h.tree.node("/t").map(Node::kind), Some(NodeKind::Ttl(500)));
    assert_eq!(h.stat("/t").ephemeral_owner, 0);
    let mtime = h.stat("/t").mtime;
    assert!(!h
        .tree
        .expired_nodes(mtime + 500, 0)
        .contains(&"/t".to_owned()));
    assert!(h
        .tree
        .expired_nodes(mtime + 501, 0)
        .contains(&"/t".to_owned()));

    let sys = Origin::system();
    for path in ["/c", "/t"] {
        let r = h.run(&sys, Txn::DeleteContainer { path: path.into() });
        assert_eq!(r.outcome, Outcome::Done(Done::Deleted), "{path}");
    }
    h.s1(create("/plain", 0));
    let r = h.run(
        &sys,
        Txn::DeleteContainer {
            path: "/plain".into(),
        },
    );
    assert_eq!(r.outcome.code(), ErrorCode::BadVersion);
    // Containers can have children, unlike ephemerals.
    assert!(h.tree.expired_nodes(i64::MAX, 0).is_empty());
}

#[test]
fn all_children_number_counts_descendants() {
    let mut h = Harness::new();
    h.s1(create("/a", 0));
    h.s1(create("/a/b", 0));
    h.s1(create("/a/b/c", 0));
    h.s1(create("/ab", 0));
    assert_eq!(h.tree.all_children_number("/a"), Some(2));
    assert_eq!(h.tree.all_children_number("/"), Some(3 + 4));
    assert_eq!(h.tree.all_children_number("/nope"), None);
}

#[test]
fn invalid_session_ids_are_refused() {
    let mut h = Harness::new();
    for id in [0, i64::MIN, NodeKind::ttl_owner(5)] {
        let r = h.run(
            &Origin::system(),
            Txn::CreateSession {
                session_id: id,
                timeout_ms: 1,
            },
        );
        assert_eq!(r.outcome.code(), ErrorCode::BadArguments, "{id:#x}");
    }
}

#[test]
fn snapshot_round_trip_and_errors() {
    let mut h = Harness::new();
    h.s1(create("/a", 0));
    h.s1(create("/a/e", 1));
    h.s1(create("/a-b", 2));
    let bytes = snapshot::snapshot(&h.tree);
    let restored = snapshot::restore(&bytes, h.tree.options()).expect("restores");
    assert_eq!(restored, h.tree);
    assert_eq!(snapshot::snapshot(&restored), bytes);
    assert_eq!(
        snapshot::restore(b"nope", TreeOptions::default()),
        Err(snapshot::SnapshotError::BadMagic)
    );
    for cut in 0..bytes.len() {
        assert!(snapshot::restore(&bytes[..cut], TreeOptions::default()).is_err());
    }
}

/// Expected values computed apart from this code: CRC-32 (zlib's) of the path, the
/// data and the stat fields packed big-endian, as ZooKeeper's `DigestCalculator`.
#[test]
fn node_digests_follow_zookeepers_layout() {
    assert_eq!(DataTree::default().digest(), 1_371_985_504);
    let node = Node {
        data: Some(b"x".to_vec()),
        acl: Acl::open_unsafe(),
        stat: StoredStat {
            czxid: 5,
            mzxid: 7,
            pzxid: 6,
            ctime: 1000,
            mtime: 2000,
            version: 2,
            cversion: 1,
            aversion: 3,
            ephemeral_owner: S1,
        },
        children: BTreeSet::new(),
    };
    assert_eq!(node_digest("/a", &node), 3_893_171_619);
    // The ACL and the children are not part of it; nothing under /zookeeper/ is.
    let mut other = node.clone();
    other.acl = Acl::read_unsafe();
    other.children.insert("c".into());
    assert_eq!(node_digest("/a", &other), 3_893_171_619);
    assert_eq!(node_digest("/zookeeper/config", &node), 0);
    assert_ne!(node_digest("/zookeeper", &node), 0);
}

#[test]
fn the_digest_follows_every_change_and_only_changes() {
    let mut h = Harness::new();
    let mut seen = vec![h.tree.digest()];
    let mut changed = |h: &Harness| {
        let digest = h.tree.digest();
        assert_eq!(h.tree.sums(), h.tree.whole_sums());
        assert!(
            !seen.contains(&digest),
            "a change left the digest as it was"
        );
        seen.push(digest);
    };
    h.s1(create("/a", 0));
    changed(&h);
    h.s1(Txn::SetData {
        path: "/a".into(),
        data: Some(b"x".to_vec()),
        version: -1,
    });
    changed(&h);
    h.s1(create("/a/e", 1));
    changed(&h);
    h.s1(Txn::SetAcl {
        path: "/a".into(),
        acl: Acl::read_unsafe(),
        version: -1,
    });
    changed(&h);
    // A failed transaction and a failed multi change nothing.
    let before = h.tree.digest();
    assert_ne!(h.s1(create("/a", 0)).outcome.code(), ErrorCode::Ok);
    let multi = Txn::Multi(vec![create("/b", 0), create("/a", 0)]);
    assert!(matches!(h.s1(multi).outcome, Outcome::MultiFailed(_)));
    assert_eq!(h.tree.digest(), before);
    // Closing the session deletes its ephemeral, which changes its parent too.
    h.run(&Origin::system(), Txn::CloseSession { session_id: S1 });
    changed(&h);
    let restored = snapshot::restore(&snapshot::snapshot(&h.tree), h.tree.options()).unwrap();
    assert_eq!(restored.sums(), h.tree.sums());
}
