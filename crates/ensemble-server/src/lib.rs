//! `ensemble-server`: a ZooKeeper-compatible coordination server.
//!
//! Modules, each pure and independent of sockets and consensus:
//! - [`protocol`]: the jute wire codec (frames, records, requests, replies, codes).
//! - [`tree`]: the data tree, changed only by deterministic transactions, with
//!   path rules, ACL evaluation and snapshots.
//! - [`watches`]: which watcher hears of which tree change (one-shot, persistent,
//!   persistent-recursive).

pub mod protocol;
pub mod tree;
pub mod watches;
