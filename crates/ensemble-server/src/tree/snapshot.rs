//! Snapshots: the whole tree as one compact byte string, and back.
//!
//! Contract: `restore(&snapshot(t), t.options()) == Ok(t)` for every tree `t`;
//! `restore` never panics and rejects malformed input with a [`SnapshotError`].
//! The format is ours (not ZooKeeper's), big-endian, built from jute primitives:
//!
//! ```text
//! magic "ENS1" (i32) | format version (i32) = 2 | last zxid (i64)
//! secret (buffer, -1 = not set yet)
//! sessions: count (i32), then (id i64, timeout i32)*
//! nodes, in path order: count (i32), then
//!   path (ustring) | data (buffer, -1 = null) | acl (vector<ACL>)
//!   czxid mzxid ctime mtime (i64) | version cversion aversion (i32)
//!   ephemeralOwner pzxid (i64)
//! ```
//!
//! Children and the ephemeral/container/TTL indexes are derived on restore.
//!
//! A snapshot can also be taken a few nodes at a time while transactions go on
//! ([`DataTree::begin_snapshot`], [`DataTree::continue_snapshot`]), so that a large
//! tree is never held still for the whole of it, nor copied whole: each step hands
//! over the bytes it wrote. Contract: the pieces, joined in order, are exactly what
//! [`snapshot`] returned when it began, whatever was applied between the steps. The
//! node count, which precedes the nodes, is the count when it began: every node
//! then is written, as it was then. How: nodes are written in path order behind a cursor; a
//! node after the cursor that a transaction is about to change, create or delete
//! has its state as of the beginning (or its absence) set aside first, and that is
//! what gets written when the cursor reaches it. Every change to a node goes
//! through `DataTree::touch`, which sets it aside.

use std::collections::BTreeMap;
use std::ops::Bound;

use thiserror::Error;

use super::{path, DataTree, Node, StoredStat, TreeOptions};
use crate::protocol::records::Field;
use crate::protocol::{Acl, DecodeError, Reader, Writer};

const MAGIC: i32 = i32::from_be_bytes(*b"ENS1");
const FORMAT_VERSION: i32 = 2;
/// Bytes a node occupies at the least: path, data, acl lengths and the stat.
const MIN_NODE_SIZE: usize = 4 + 4 + 4 + 8 * 4 + 4 * 3 + 8 * 2;

/// Why bytes are not a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(i32),
    #[error("malformed snapshot: {0}")]
    Decode(#[from] DecodeError),
    #[error("snapshot has no root node")]
    MissingRoot,
    #[error("snapshot node {0} appears twice")]
    Duplicate(String),
    #[error("snapshot node {0} has no parent")]
    Orphan(String),
}

/// Serializes the tree. Sessions and nodes come out in sorted order, so equal trees
/// give equal bytes.
pub fn snapshot(tree: &DataTree) -> Vec<u8> {
    let mut w = header(tree);
    w.write_i32(i32::try_from(tree.nodes.len()).unwrap_or(i32::MAX));
    for (path, node) in &tree.nodes {
        write_node(&mut w, path, node);
    }
    w.into_bytes()
}

/// Everything before the node count.
fn header(tree: &DataTree) -> Writer {
    let mut w = Writer::new();
    w.write_i32(MAGIC);
    w.write_i32(FORMAT_VERSION);
    w.write_i64(tree.last_zxid);
    w.write_buffer(tree.secret.as_deref());
    let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(k, v)| (*k, *v)).collect();
    w.write_vec(&sessions, |w, (id, timeout)| {
        w.write_i64(*id);
        w.write_i32(*timeout);
    });
    w
}

fn write_node(w: &mut Writer, path: &str, node: &Node) {
    w.write_ustring(path);
    w.write_buffer(node.data.as_deref());
    node.acl.write_field(w);
    let s = &node.stat;
    w.write_i64(s.czxid);
    w.write_i64(s.mzxid);
    w.write_i64(s.ctime);
    w.write_i64(s.mtime);
    w.write_i32(s.version);
    w.write_i32(s.cversion);
    w.write_i32(s.aversion);
    w.write_i64(s.ephemeral_owner);
    w.write_i64(s.pzxid);
}

/// A snapshot under way; see the module contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Capture {
    /// Bytes written since the last step handed them over.
    out: Writer,
    /// The nodes the snapshot began with, which is how many it writes.
    announced: i32,
    count: i32,
    /// The last path written: every path up to it is done. `None` before the first.
    cursor: Option<String>,
    /// Paths after the cursor changed since the beginning: each node as written then,
    /// or `None` if it did not exist.
    before: BTreeMap<String, Option<Vec<u8>>>,
}

impl Capture {
    /// Sets aside the state of `path` as of the beginning, unless it is behind the
    /// cursor or already set aside. `node` is its current state, which is the state
    /// as of the beginning the first time it changes.
    pub(super) fn keep(&mut self, path: &str, node: Option<&Node>) {
        let ahead = self.cursor.as_deref().is_none_or(|cursor| path > cursor);
        if ahead && !self.before.contains_key(path) {
            let written = node.map(|node| {
                let mut w = Writer::new();
                write_node(&mut w, path, node);
                w.into_bytes()
            });
            self.before.insert(path.to_owned(), written);
        }
    }
}

/// How far [`DataTree::continue_snapshot`] got, with the bytes the step wrote: the
/// snapshot's pieces in order, which join up to the whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More nodes are left.
    Pending(Vec<u8>),
    /// The snapshot is complete: its last piece.
    Done(Vec<u8>),
    /// No snapshot was under way.
    Idle,
}

impl DataTree {
    /// Begins a snapshot of the tree as it is now, to be written by
    /// [`DataTree::continue_snapshot`]; returns the zxid it is taken at. A snapshot
    /// already under way is dropped.
    pub fn begin_snapshot(&mut self) -> i64 {
        let mut out = header(self);
        let announced = i32::try_from(self.nodes.len()).unwrap_or(i32::MAX);
        out.write_i32(announced);
        self.capture = Some(Box::new(Capture {
            out,
            announced,
            count: 0,
            cursor: None,
            before: BTreeMap::new(),
        }));
        self.last_zxid
    }

    pub fn snapshot_under_way(&self) -> bool {
        self.capture.is_some()
    }

    /// Drops the snapshot under way, if any.
    pub fn cancel_snapshot(&mut self) {
        self.capture = None;
    }

    /// Writes up to `nodes` more nodes of the snapshot under way (`usize::MAX`: all
    /// that are left).
    pub fn continue_snapshot(&mut self, nodes: usize) -> Progress {
        let Some(capture) = self.capture.as_deref_mut() else {
            return Progress::Idle;
        };
        let Capture {
            out,
            count,
            cursor,
            before,
            ..
        } = capture;
        let after = match cursor.as_deref() {
            Some(cursor) => Bound::Excluded(cursor),
            None => Bound::Unbounded,
        };
        let mut live = self
            .nodes
            .range::<str, _>((after, Bound::Unbounded))
            .peekable();
        let mut kept = before.range::<str, _>((after, Bound::Unbounded)).peekable();
        let mut last: Option<&str> = None;
        for _ in 0..nodes {
            // The next path in order; what was set aside for it wins over the tree.
            let next_live = live.peek().map(|(path, _)| path.as_str());
            let next_kept = kept.peek().map(|(path, _)| path.as_str());
            let take_kept = match (next_live, next_kept) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(l), Some(k)) => k <= l,
            };
            let path = if take_kept {
                let Some((path, written)) = kept.next() else {
                    break;
                };
                if next_live == Some(path.as_str()) {
                    live.next();
                }
                if let Some(written) = written {
                    out.write_raw(written);
                    *count += 1;
                }
                path
            } else {
                let Some((path, node)) = live.next() else {
                    break;
                };
                write_node(out, path, node);
                *count += 1;
                path
            };
            last = Some(path);
        }
        let finished = live.peek().is_none() && kept.peek().is_none();
        if !finished {
            if let Some(last) = last {
                let last = last.to_owned();
                let mut ahead = before.split_off(last.as_str());
                ahead.remove(last.as_str());
                *before = ahead;
                *cursor = Some(last);
            }
            return Progress::Pending(std::mem::take(out).into_bytes());
        }
        let Some(capture) = self.capture.take() else {
            return Progress::Idle;
        };
        let Capture {
            out,
            announced,
            count,
            ..
        } = *capture;
        debug_assert_eq!(count, announced, "a snapshot wrote the nodes it began with");
        Progress::Done(out.into_bytes())
    }
}

fn read_node(r: &mut Reader<'_>) -> Result<(String, Node), DecodeError> {
    let path = r.read_ustring()?;
    let data = r.read_buffer()?;
    let acl = Vec::<Acl>::read_field(r)?;
    let stat = StoredStat {
        czxid: r.read_i64()?,
        mzxid: r.read_i64()?,
        ctime: r.read_i64()?,
        mtime: r.read_i64()?,
        version: r.read_i32()?,
        cversion: r.read_i32()?,
        aversion: r.read_i32()?,
        ephemeral_owner: r.read_i64()?,
        pzxid: r.read_i64()?,
    };
    Ok((
        path,
        Node {
            data,
            acl,
            stat,
            children: Default::default(),
        },
    ))
}

/// Rebuilds a tree from [`snapshot`] bytes.
pub fn restore(bytes: &[u8], options: TreeOptions) -> Result<DataTree, SnapshotError> {
    let mut r = Reader::new(bytes);
    if r.read_i32()? != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = r.read_i32()?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let last_zxid = r.read_i64()?;
    let secret = r.read_buffer()?;
    let sessions: BTreeMap<i64, i32> = r
        .read_vec(12, |r| Ok((r.read_i64()?, r.read_i32()?)))?
        .into_iter()
        .collect();
    let nodes = r.read_vec(MIN_NODE_SIZE, read_node)?;
    r.finish()?;

    let mut tree = DataTree::new(options);
    tree.nodes.clear();
    tree.last_zxid = last_zxid;
    tree.secret = secret;
    tree.sessions = sessions;
    for (path, node) in nodes {
        if tree.nodes.contains_key(&path) {
            return Err(SnapshotError::Duplicate(path));
        }
        if path != "/" {
            let (parent, name) =
                path::split_parent(&path).ok_or_else(|| SnapshotError::Orphan(path.clone()))?;
            let parent = tree
                .nodes
                .get_mut(parent)
                .ok_or_else(|| SnapshotError::Orphan(path.clone()))?;
            parent.children.insert(name.to_owned());
        }
        tree.insert_untouched(path, node);
    }
    if !tree.nodes.contains_key("/") {
        return Err(SnapshotError::MissingRoot);
    }
    tree.sums = tree.whole_sums();
    Ok(tree)
}
