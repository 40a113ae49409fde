//! `ensemble-server`: a ZooKeeper-compatible coordination server.
//!
//! Modules, each pure and independent of sockets and consensus:
//! - [`protocol`]: the jute wire codec (frames, records, requests, replies, codes).
//! - [`tree`]: the data tree, changed only by deterministic transactions, with
//!   path rules, ACL evaluation and snapshots.
//! - [`watches`]: which watcher hears of which tree change (one-shot, persistent,
//!   persistent-recursive).
//! - [`session`]: the session table (ids, passwords, timeouts, expiry).
//! - [`config`]: the zoo.cfg-style settings of one member.
//!
//! On top of them, with I/O:
//! - [`consensus`]: the replicated, durable log (Raft) under the server.
//! - [`server`]: the tokio network layer of one member, with its four-letter
//!   words and its admin HTTP port (probes, status, metrics).
//! - [`cli`]: the `ensemble server` and `ensemble local` subcommands.
//! - [`bench`]: the `ensemble bench` load generator, a client of any ZooKeeper-compatible
//!   server.

pub mod bench;
pub mod cli;
pub mod config;
pub mod consensus;
pub mod protocol;
pub mod server;
pub mod session;
pub mod tree;
pub mod watches;
