//! The data tree: znodes, their stats, sessions and ephemeral ownership, changed only
//! by [`DataTree::apply`].
//!
//! Contract:
//! - `apply(zxid, time_ms, origin, txn)` is deterministic: the same sequence of calls
//!   yields equal trees and equal results on every member. It validates the
//!   transaction against the current tree (path, session, ACL, version) in the order
//!   Apache ZooKeeper's `PrepRequestProcessor` does, so error codes match, then
//!   changes the tree as ZooKeeper's `DataTree` does, and reports the watch events
//!   it triggered. A failed transaction changes nothing but `last_zxid`.
//! - Stats follow ZooKeeper exactly. The stored `cversion` counts child creations
//!   (it also names sequential children, `%010d`); clients see
//!   `2 * creations - numChildren`, i.e. creations plus deletions. `pzxid` is the zxid
//!   of the last child creation or deletion. Versions wrap from `i32::MAX` to
//!   `i32::MIN` and skip -1.
//! - The tree starts with `/`, `/zookeeper`, `/zookeeper/quota` and
//!   `/zookeeper/config` (read-only ACL, aversion -1), as ZooKeeper's does.
//! - Reads (`node`, `stat`, `children`, ...) never change anything; ACL checks for
//!   reads are the caller's, with [`acl::allows`].
//! - [`DataTree::digest`] is ZooKeeper's tree digest (3.6+, digest version 2): the
//!   wrapping sum over the nodes outside `/zookeeper/` of a CRC-32 of the node's
//!   path (`/` as the empty string), data and stored stat ([`node_digest`]). It is
//!   kept up to date as transactions apply, so members that applied the same log
//!   have equal digests, and a member whose tree diverged almost surely has not.
//!   So is ZooKeeper's approximate data size (every path's length plus its data's),
//!   so that `mntr` never walks the tree. Both are [`Sums`] over the nodes.

pub mod acl;
pub mod path;
pub mod snapshot;
pub mod txn;

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::{perms, Acl, CreateMode, ErrorCode, EventType, Stat};

pub use txn::{CreateKind, Done, Origin, Outcome, Txn, TxnResult, WatchEvent};

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte that marks an extended ephemeral owner (TTL nodes).
const EXTENDED_MASK: u64 = 0xff00_0000_0000_0000;
const RESERVED_BITS_MASK: u64 = 0x00ff_ff00_0000_0000;
/// Largest TTL in milliseconds (`EphemeralType.TTL.maxValue()`, about 34 years).
pub const MAX_TTL_MS: i64 = 0x0000_00ff_ffff_ffff;

/// Paths no client may delete (`DataTree.isSpecialPath`).
pub const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// Settings every member must share, since they change what `apply` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// ZooKeeper's `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub ttl_enabled: bool,
}

/// What kind of node an ephemeral-owner value denotes (`EphemeralType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(i64),
    Container,
    /// Time to live in milliseconds, counted from the last modification.
    Ttl(i64),
}

impl NodeKind {
    pub fn from_owner(owner: i64) -> Self {
        let bits = owner as u64;
        if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner == 0 {
            NodeKind::Persistent
        } else if bits & EXTENDED_MASK == EXTENDED_MASK && bits & RESERVED_BITS_MASK == 0 {
            NodeKind::Ttl(owner & MAX_TTL_MS)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    fn ttl_owner(ttl: i64) -> i64 {
        (EXTENDED_MASK as i64) | ttl
    }
}

/// `StatPersisted`: the stat as stored; [`Node::stat`] derives what clients see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Number of child creations (not the client-visible cversion).
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub stat: StoredStat,
    pub children: BTreeSet<String>,
}

impl Node {
    fn system(acl: Vec<Acl>) -> Self {
        Self {
            data: Some(Vec::new()),
            acl,
            stat: StoredStat::default(),
            children: BTreeSet::new(),
        }
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.stat.ephemeral_owner)
    }

    /// The stat clients see (`DataNode.copyStat`).
    pub fn stat(&self) -> Stat {
        let s = &self.stat;
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: match self.kind() {
                NodeKind::Ephemeral(owner) => owner,
                _ => 0,
            },
            data_length: self
                .data
                .as_ref()
                .map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX)),
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// Prior versions of the nodes a multi touched, to undo it if an op fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Journal {
    saved: Vec<(String, Option<Node>)>,
    seen: BTreeSet<String>,
}

/// The tree. See the module contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTree {
    options: TreeOptions,
    nodes: BTreeMap<String, Node>,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Live sessions and their negotiated timeouts.
    sessions: BTreeMap<i64, i32>,
    /// The ensemble's secret for session passwords, once set ([`Txn::SetSecret`]).
    secret: Option<Vec<u8>>,
    last_zxid: i64,
    /// See the module contract.
    sums: Sums,
    /// The nodes an `apply` under way changed; their shares were taken out of
    /// `sums` before the first change and go back in when it ends.
    changing: BTreeSet<String>,
    journal: Option<Journal>,
    /// A snapshot being taken a few nodes at a time ([`snapshot`]).
    capture: Option<Box<snapshot::Capture>>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new(TreeOptions::default())
    }
}

/// ZooKeeper's `checkAndIncVersion`.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    let next = current.wrapping_add(1);
    Ok(if next == -1 { 0 } else { next })
}

/// Paths whose nodes the digest leaves out (`ZooDefs.ZOOKEEPER_NODE_SUBTREE`).
const UNDIGESTED: &str = "/zookeeper/";

/// One node's share of the tree's digest, as ZooKeeper's `DigestCalculator`
/// computes it: CRC-32 of the path, the data, then the stored stat's czxid, mzxid,
/// pzxid, ctime, mtime, version, cversion, aversion and ephemeral owner, big-endian.
pub fn node_digest(path: &str, node: &Node) -> i64 {
    if path.starts_with(UNDIGESTED) {
        return 0;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(if path == "/" { b"" } else { path.as_bytes() });
    if let Some(data) = &node.data {
        crc.update(data);
    }
    let s = &node.stat;
    let mut stat = [0u8; 60];
    let fields: [&[u8]; 9] = [
        &s.czxid.to_be_bytes(),
        &s.mzxid.to_be_bytes(),
        &s.pzxid.to_be_bytes(),
        &s.ctime.to_be_bytes(),
        &s.mtime.to_be_bytes(),
        &s.version.to_be_bytes(),
        &s.cversion.to_be_bytes(),
        &s.aversion.to_be_bytes(),
        &s.ephemeral_owner.to_be_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        stat[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    crc.update(&stat);
    i64::from(crc.finalize())
}

/// What the tree keeps summed over its nodes as transactions apply; see the module
/// contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// ZooKeeper's tree digest.
    pub digest: i64,
    /// ZooKeeper's approximate data size: every path's length plus its data's.
    pub data_size: u64,
}

impl Sums {
    /// One node's share.
    fn of(path: &str, node: &Node) -> Self {
        Sums {
            digest: node_digest(path, node),
            data_size: (path.len() + node.data.as_ref().map_or(0, Vec::len)) as u64,
        }
    }

    fn add(&mut self, share: Sums) {
        self.digest = self.digest.wrapping_add(share.digest);
        self.data_size = self.data_size.wrapping_add(share.data_size);
    }

    fn remove(&mut self, share: Sums) {
        self.digest = self.digest.wrapping_sub(share.digest);
        self.data_size = self.data_size.wrapping_sub(share.data_size);
    }
}

/// Parent of `path` as ZooKeeper computes it (`substring(0, lastIndexOf('/'))`,
/// with "" meaning the root), for creates.
fn create_parent(path: &str) -> Option<&str> {
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

impl DataTree {
    /// A fresh tree with ZooKeeper's system nodes.
    pub fn new(options: TreeOptions) -> Self {
        let mut root = Node::system(Acl::open_unsafe());
        root.children.insert("zookeeper".into());
        let mut zookeeper = Node::system(Acl::open_unsafe());
        zookeeper.children.insert("quota".into());
        zookeeper.children.insert("config".into());
        let mut config = Node::system(Acl::read_unsafe());
        // ZooKeeper sets the config node's ACL with version -1, which stores aversion -1.
        config.stat.aversion = -1;
        let nodes = BTreeMap::from([
            ("/".to_owned(), root),
            ("/zookeeper".to_owned(), zookeeper),
            (
                "/zookeeper/quota".to_owned(),
                Node::system(Acl::open_unsafe()),
            ),
            (CONFIG_NODE.to_owned(), config),
        ]);
        let mut tree = Self {
            options,
            nodes,
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: BTreeMap::new(),
            secret: None,
            last_zxid: 0,
            sums: Sums::default(),
            changing: BTreeSet::new(),
            journal: None,
            capture: None,
        };
        tree.sums = tree.whole_sums();
        tree
    }

    pub fn options(&self) -> TreeOptions {
        self.options
    }

    // ---- reads ----

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The tree's digest; see the module contract.
    pub fn digest(&self) -> i64 {
        self.sums.digest
    }

    /// ZooKeeper's approximate data size: every path's length plus its data's.
    pub fn approximate_data_size(&self) -> u64 {
        self.sums.data_size
    }

    /// The sums as kept while transactions apply.
    pub fn sums(&self) -> Sums {
        self.sums
    }

    /// The sums computed afresh from every node.
    pub fn whole_sums(&self) -> Sums {
        let mut sums = Sums::default();
        for (path, node) in &self.nodes {
            sums.add(Sums::of(path, node));
        }
        sums
    }

    /// Moves the last zxid to `zxid` for a log entry that carries no transaction
    /// (a new term's blank entry, a membership change); never backwards.
    pub fn advance(&mut self, zxid: i64) {
        self.last_zxid = self.last_zxid.max(zxid);
    }

    /// The ensemble's secret for session passwords, once set.
    pub fn secret(&self) -> Option<&[u8]> {
        self.secret.as_deref()
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(Node::stat)
    }

    /// Child names, sorted.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.nodes
            .get(path)
            .map(|n| n.children.iter().cloned().collect())
    }

    /// Number of nodes below `path` (getAllChildrenNumber), `None` if it is missing.
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        self.nodes.get(path)?;
        let count = if path == "/" {
            self.nodes.len() - 1
        } else {
            let prefix = format!("{path}/");
            self.nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .count()
        };
        Some(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// The ephemeral nodes a session owns, sorted.
    pub fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every session that owns ephemeral nodes, with their paths, both sorted
    /// (ZooKeeper's `dump`).
    pub fn ephemerals_by_session(&self) -> &BTreeMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    /// Live sessions and their timeouts in milliseconds.
    pub fn sessions(&self) -> &BTreeMap<i64, i32> {
        &self.sessions
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// All nodes in path order.
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Containers and TTL nodes that ZooKeeper's `ContainerManager` would delete at
    /// `now_ms`: empty containers that have had children (or, if
    /// `max_never_used_ms` is non-zero, that have been unused longer than that), and
    /// empty TTL nodes unmodified for longer than their TTL.
    pub fn expired_nodes(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for path in &self.containers {
            if let Some(node) = self.nodes.get(path) {
                let elapsed = now_ms.saturating_sub(node.stat.mtime);
                if node.children.is_empty()
                    && (node.stat.cversion > 0
                        || (max_never_used_ms != 0 && elapsed > max_never_used_ms))
                {
                    out.push(path.clone());
                }
            }
        }
        for path in &self.ttls {
            if let Some(node) = self.nodes.get(path) {
                if let NodeKind::Ttl(ttl) = node.kind() {
                    let elapsed = now_ms.saturating_sub(node.stat.mtime);
                    if node.children.is_empty() && ttl != 0 && elapsed > ttl {
                        out.push(path.clone());
                    }
                }
            }
        }
        out
    }

    // ---- the single mutation path ----

    /// Applies one transaction; see the module contract.
    pub fn apply(&mut self, zxid: i64, time_ms: i64, origin: &Origin, txn: &Txn) -> TxnResult {
        let mut events = Vec::new();
        let outcome = match txn {
            Txn::Multi(ops) => self.apply_multi(zxid, time_ms, origin, ops, &mut events),
            other => match self.apply_op(zxid, time_ms, origin, other, &mut events, false) {
                Ok(done) => Outcome::Done(done),
                Err(code) => Outcome::Failed(code),
            },
        };
        for path in std::mem::take(&mut self.changing) {
            if let Some(node) = self.nodes.get(&path) {
                self.sums.add(Sums::of(&path, node));
            }
        }
        self.last_zxid = zxid;
        TxnResult { outcome, events }
    }

    fn apply_multi(
        &mut self,
        zxid: i64,
        time_ms: i64,
        origin: &Origin,
        ops: &[Txn],
        events: &mut Vec<WatchEvent>,
    ) -> Outcome {
        self.journal = Some(Journal::default());
        let mut results = Vec::with_capacity(ops.len());
        let mut failure = None;
        for (i, op) in ops.iter().enumerate() {
            match self.apply_op(zxid, time_ms, origin, op, events, true) {
                Ok(done) => results.push(done),
                Err(code) => {
                    failure = Some((i, code));
                    break;
                }
            }
        }
        let journal = self.journal.take().unwrap_or_default();
        match failure {
            None => Outcome::Done(Done::Multi(results)),
            Some((failed_at, code)) => {
                self.rollback(journal);
                events.clear();
                let codes = (0..ops.len())
                    .map(|i| match i.cmp(&failed_at) {
                        std::cmp::Ordering::Less => ErrorCode::Ok,
                        std::cmp::Ordering::Equal => code,
                        std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                    })
                    .collect();
                Outcome::MultiFailed(codes)
            }
        }
    }

    fn apply_op(
        &mut self,
        zxid: i64,
        time: i64,
        origin: &Origin,
        txn: &Txn,
        events: &mut Vec<WatchEvent>,
        in_multi: bool,
    ) -> Result<Done, ErrorCode> {
        match txn {
            Txn::Create {
                path,
                data,
                acl,
                flags,
                kind,
                ttl,
            } => self.create(
                zxid, time, origin, path, data, acl, *flags, *kind, *ttl, events,
            ),
            Txn::Delete { path, version } => {
                self.check_session(origin, false)?;
                let (parent, _) = self.deletable_parent(path)?;
                let parent_node = self.nodes.get(parent).ok_or(ErrorCode::NoNode)?;
                self.check_acl(&parent_node.acl, perms::DELETE, origin)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                check_version(node.stat.version, *version)?;
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                self.delete_node(path, zxid, events);
                Ok(Done::Deleted)
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                self.check_session(origin, false)?;
                path::validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                self.check_acl(&node.acl, perms::WRITE, origin)?;
                let new_version = check_version(node.stat.version, *version)?;
                self.touch(path);
                let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
                node.data = data.clone();
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                node.stat.version = new_version;
                let stat = node.stat();
                events.push(WatchEvent::new(EventType::NodeDataChanged, path.as_str()));
                Ok(Done::DataSet(stat))
            }
            Txn::SetAcl { path, acl, version } => {
                self.check_session(origin, false)?;
                path::validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
                let acl = acl::fixup_acl(acl, &origin.auth)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                self.check_acl(&node.acl, perms::ADMIN, origin)?;
                let new_version = check_version(node.stat.aversion, *version)?;
                self.touch(path);
                let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
                node.stat.aversion = new_version;
                node.acl = acl;
                Ok(Done::AclSet(node.stat()))
            }
            Txn::Check { path, version } => {
                self.check_session(origin, false)?;
                path::validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                self.check_acl(&node.acl, perms::READ, origin)?;
                check_version(node.stat.version, *version)?;
                Ok(Done::Checked(node.stat()))
            }
            // `apply` handles a top-level multi; inside one, only the four ops above
            // may appear (ZooKeeper's decoder refuses the rest).
            Txn::Multi(_) => Err(ErrorCode::BadArguments),
            Txn::CreateSession { .. }
            | Txn::CloseSession { .. }
            | Txn::DeleteContainer { .. }
            | Txn::SetSecret { .. }
                if in_multi =>
            {
                Err(ErrorCode::BadArguments)
            }
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                // Ids that would read as "no owner", a container or a TTL are refused.
                if !matches!(NodeKind::from_owner(*session_id), NodeKind::Ephemeral(_)) {
                    return Err(ErrorCode::BadArguments);
                }
                self.sessions.insert(*session_id, *timeout_ms);
                Ok(Done::SessionCreated)
            }
            Txn::SetSecret { secret } => {
                if self.secret.is_none() {
                    self.secret = Some(secret.clone());
                }
                Ok(Done::SecretSet)
            }
            Txn::CloseSession { session_id } => {
                let deleted = self.ephemerals(*session_id);
                for path in &deleted {
                    self.delete_node(path, zxid, events);
                }
                self.sessions.remove(session_id);
                Ok(Done::SessionClosed { deleted })
            }
            Txn::DeleteContainer { path } => {
                let (parent, _) = self.deletable_parent(path)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                // ZooKeeper refuses only ephemerals here; we also spare persistent
                // nodes, in case the path was recreated since it was found expired.
                if !matches!(node.kind(), NodeKind::Container | NodeKind::Ttl(_)) {
                    return Err(ErrorCode::BadVersion);
                }
                self.nodes.get(parent).ok_or(ErrorCode::NoNode)?;
                self.delete_node(path, zxid, events);
                Ok(Done::Deleted)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        zxid: i64,
        time: i64,
        origin: &Origin,
        path: &str,
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        flags: i32,
        kind: CreateKind,
        ttl: Option<i64>,
        events: &mut Vec<WatchEvent>,
    ) -> Result<Done, ErrorCode> {
        // Order of checks: PrepRequestProcessor.pRequest2TxnCreate.
        let mode = CreateMode::from_i32(flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.options.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = if kind == CreateKind::Ttl {
            ttl.unwrap_or(-1)
        } else {
            -1
        };
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 || kind == CreateKind::Ttl {
            return Err(ErrorCode::BadArguments);
        }
        let ephemeral = kind == CreateKind::Regular && mode.is_ephemeral();
        self.check_session(origin, ephemeral)?;
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = create_parent(path).ok_or(ErrorCode::BadArguments)?;
        let acl = acl::fixup_acl(acl, &origin.auth)?;
        let parent = self.nodes.get(parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&parent.acl, perms::CREATE, origin)?;
        let parent_cversion = parent.stat.cversion;
        let path = if mode.is_sequential() {
            format!("{path}{parent_cversion:010}")
        } else {
            path.to_owned()
        };
        path::validate_path(&path).map_err(|_| ErrorCode::BadArguments)?;
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let owner = match kind {
            CreateKind::Container => CONTAINER_OWNER,
            CreateKind::Ttl => NodeKind::ttl_owner(ttl),
            CreateKind::Regular if ephemeral => origin.session_id,
            CreateKind::Regular => 0,
        };

        let (parent_path, name) = path::split_parent(&path).ok_or(ErrorCode::BadArguments)?;
        let parent_path = parent_path.to_owned();
        self.touch(&parent_path);
        let parent = self.nodes.get_mut(&parent_path).ok_or(ErrorCode::NoNode)?;
        let new_cversion = parent_cversion.wrapping_add(1);
        // DataTree.createNode only moves cversion forward (replay safety).
        if new_cversion > parent.stat.cversion {
            parent.stat.cversion = new_cversion;
            parent.stat.pzxid = zxid;
        }
        parent.children.insert(name.to_owned());
        let node = Node {
            data: data.clone(),
            acl,
            stat: StoredStat {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: zxid,
            },
            children: BTreeSet::new(),
        };
        let stat = node.stat();
        self.insert_node(path.clone(), node);
        events.push(WatchEvent::new(EventType::NodeCreated, path.as_str()));
        events.push(WatchEvent::new(EventType::NodeChildrenChanged, parent_path));
        Ok(Done::Created { path, stat })
    }

    /// `getParentPathAndValidate`: the parent of a node that may be deleted.
    fn deletable_parent<'p>(&self, path: &'p str) -> Result<(&'p str, &'p str), ErrorCode> {
        if path.contains('\0') || SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        path::split_parent(path).ok_or(ErrorCode::BadArguments)
    }

    fn check_session(&self, origin: &Origin, require_session: bool) -> Result<(), ErrorCode> {
        if origin.session_id == 0 && !require_session {
            return Ok(());
        }
        if self.sessions.contains_key(&origin.session_id) {
            Ok(())
        } else {
            Err(ErrorCode::SessionExpired)
        }
    }

    fn check_acl(&self, acl: &[Acl], perm: i32, origin: &Origin) -> Result<(), ErrorCode> {
        if acl::allows(acl, perm, &origin.auth) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// `DataTree.deleteNode`: unlinks from the parent (pzxid moves forward, the
    /// stored cversion does not change) and removes the node.
    fn delete_node(&mut self, path: &str, zxid: i64, events: &mut Vec<WatchEvent>) {
        let Some((parent_path, name)) = path::split_parent(path) else {
            return;
        };
        let parent_path = parent_path.to_owned();
        self.touch(&parent_path);
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.remove(name);
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        self.remove_node(path);
        events.push(WatchEvent::new(EventType::NodeDeleted, path));
        events.push(WatchEvent::new(EventType::NodeChildrenChanged, parent_path));
    }

    /// Called before every change to the node at `path`: takes its share out of the
    /// sums until `apply` ends, saves its prior version when a multi is in
    /// progress, and sets it aside for a snapshot under way.
    fn touch(&mut self, path: &str) {
        if !self.changing.contains(path) {
            if let Some(node) = self.nodes.get(path) {
                self.sums.remove(Sums::of(path, node));
            }
            self.changing.insert(path.to_owned());
        }
        if let Some(capture) = &mut self.capture {
            capture.keep(path, self.nodes.get(path));
        }
        if let Some(journal) = &mut self.journal {
            if journal.seen.insert(path.to_owned()) {
                journal
                    .saved
                    .push((path.to_owned(), self.nodes.get(path).cloned()));
            }
        }
    }

    fn insert_node(&mut self, path: String, node: Node) {
        self.touch(&path);
        self.insert_untouched(path, node);
    }

    /// Inserts without [`DataTree::touch`]: for a tree being built (restore), whose
    /// sums are computed once it is whole.
    fn insert_untouched(&mut self, path: String, node: Node) {
        self.index(&path, &node);
        self.nodes.insert(path, node);
    }

    fn remove_node(&mut self, path: &str) {
        self.touch(path);
        if let Some(node) = self.nodes.remove(path) {
            self.unindex(path, &node);
        }
    }

    fn index(&mut self, path: &str, node: &Node) {
        match node.kind() {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.to_owned());
            }
            NodeKind::Container => {
                self.containers.insert(path.to_owned());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
        }
    }

    fn unindex(&mut self, path: &str, node: &Node) {
        match node.kind() {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
    }

    fn rollback(&mut self, journal: Journal) {
        for (path, old) in journal.saved.into_iter().rev() {
            if let Some(current) = self.nodes.remove(&path) {
                self.unindex(&path, &current);
            }
            if let Some(old) = old {
                self.index(&path, &old);
                self.nodes.insert(path, old);
            }
        }
    }
}

#[cfg(test)]
mod tests;
