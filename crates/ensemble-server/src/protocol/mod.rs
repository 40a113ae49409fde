//! The ZooKeeper wire protocol (jute), as pure functions over byte slices: no I/O,
//! no panics on any input.
//!
//! Contract: [`frame`] splits a byte stream into length-prefixed frames; [`jute`]
//! reads and writes the primitives; [`records`] holds every record of
//! `zookeeper.jute` that clients exchange; [`request`] decodes a frame into a typed
//! [`Request`]; [`response`] encodes replies; [`codes`] has the protocol's numeric
//! constants. All decoding failures are [`DecodeError`] values.

pub mod codes;
pub mod frame;
pub mod jute;
pub mod records;
pub mod request;
pub mod response;

pub use codes::{
    perms, xid, AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType,
};
pub use frame::{split_frame, FrameCodec, FrameStatus, DEFAULT_MAX_FRAME};
pub use jute::{DecodeError, Reader, Record, Writer};
pub use records::*;
pub use request::{fuzz_decode, MultiOp, Request};
pub use response::{encode_connect_response, encode_reply, MultiResult, Response};
