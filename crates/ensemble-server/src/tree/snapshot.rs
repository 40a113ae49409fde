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

use std::collections::BTreeMap;

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
    let nodes: Vec<(&String, &Node)> = tree.nodes.iter().collect();
    w.write_vec(&nodes, |w, (path, node)| {
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
    });
    w.into_bytes()
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
        tree.insert_node(path, node);
    }
    if !tree.nodes.contains_key("/") {
        return Err(SnapshotError::MissingRoot);
    }
    Ok(tree)
}
