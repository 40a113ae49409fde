//! Replies: a [`ReplyHeader`] (xid, zxid, err) and, when err is 0, the opcode's body.
//!
//! Contract: [`encode_reply`] produces one length-prefixed frame; the body is omitted
//! whenever `err != 0`, as ZooKeeper's `FinalRequestProcessor` does. A failed multi is
//! the exception: its header says 0 and every per-op result is an error result
//! (ops before the failing one `Ok`, the failing one its code, later ones
//! `RuntimeInconsistency`). [`Response::decode_body`] is the client-side inverse and
//! needs the opcode of the request being answered. Watch notifications are replies
//! with xid -1 and a [`WatcherEvent`] body.

use super::codes::OpCode;
use super::jute::{DecodeError, Reader, Record, Writer};
use super::records::*;

/// One result of a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// Result of a `create` op: the path only.
    Create(String),
    /// Result of `create2`, `createTTL` and `createContainer` ops.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData(Stat),
    Check,
    GetChildren(Vec<String>),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    /// An error result with its code (0 for ops before the failing one).
    Error(i32),
}

impl MultiResult {
    fn op(&self) -> OpCode {
        match self {
            MultiResult::Create(_) => OpCode::Create,
            MultiResult::Create2 { .. } => OpCode::Create2,
            MultiResult::Delete => OpCode::Delete,
            MultiResult::SetData(_) => OpCode::SetData,
            MultiResult::Check => OpCode::Check,
            MultiResult::GetChildren(_) => OpCode::GetChildren,
            MultiResult::GetData { .. } => OpCode::GetData,
            MultiResult::Error(_) => OpCode::Error,
        }
    }

    fn write(&self, w: &mut Writer) {
        let err = match self {
            MultiResult::Error(e) => *e,
            _ => 0,
        };
        MultiHeader {
            op: self.op().code(),
            done: false,
            err,
        }
        .write(w);
        match self {
            MultiResult::Create(path) => w.write_ustring(path),
            MultiResult::Create2 { path, stat } => {
                w.write_ustring(path);
                stat.write(w);
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(stat) => stat.write(w),
            MultiResult::GetChildren(children) => w.write_string_vec(children),
            MultiResult::GetData { data, stat } => {
                w.write_buffer(data.as_deref());
                stat.write(w);
            }
            MultiResult::Error(e) => w.write_i32(*e),
        }
    }

    fn read(header: &MultiHeader, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let op = OpCode::from_i32(header.op).ok_or(DecodeError::InvalidMultiResult(header.op))?;
        Ok(match op {
            OpCode::Create => MultiResult::Create(r.read_ustring()?),
            OpCode::Create2 => MultiResult::Create2 {
                path: r.read_ustring()?,
                stat: Stat::read(r)?,
            },
            OpCode::Delete => MultiResult::Delete,
            OpCode::SetData => MultiResult::SetData(Stat::read(r)?),
            OpCode::Check => MultiResult::Check,
            OpCode::GetChildren => MultiResult::GetChildren(r.read_string_vec()?),
            OpCode::GetData => MultiResult::GetData {
                data: r.read_buffer()?,
                stat: Stat::read(r)?,
            },
            OpCode::Error => MultiResult::Error(r.read_i32()?),
            _ => return Err(DecodeError::InvalidMultiResult(header.op)),
        })
    }
}

/// The body of a successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, setWatches(2), checkWatches, removeWatches, closeSession, ping, auth.
    Empty,
    Create(CreateResponse),
    /// create2, createTTL, createContainer.
    Create2(Create2Response),
    /// exists, setData, setACL, check.
    Stat(Stat),
    /// getData and reconfig.
    GetData(GetDataResponse),
    GetAcl(GetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// multi and multiRead.
    Multi(Vec<MultiResult>),
    /// addWatch answers with a 4-byte `ErrorResponse` (0).
    AddWatch(ErrorResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    WhoAmI(WhoAmIResponse),
    /// A watch notification (xid -1).
    Event(WatcherEvent),
}

impl Response {
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.write(w),
            Response::Create2(r) => r.write(w),
            Response::Stat(s) => s.write(w),
            Response::GetData(r) => r.write(w),
            Response::GetAcl(r) => r.write(w),
            Response::GetChildren(r) => r.write(w),
            Response::GetChildren2(r) => r.write(w),
            Response::Sync(r) => r.write(w),
            Response::Multi(results) => {
                for result in results {
                    result.write(w);
                }
                MultiHeader {
                    op: -1,
                    done: true,
                    err: -1,
                }
                .write(w);
            }
            Response::AddWatch(r) => r.write(w),
            Response::GetEphemerals(r) => r.write(w),
            Response::GetAllChildrenNumber(r) => r.write(w),
            Response::WhoAmI(r) => r.write(w),
            Response::Event(e) => e.write(w),
        }
    }

    /// Decodes the body of a successful reply to a request with opcode `op`
    /// (`Notification` for xid -1 events).
    pub fn decode_body(op: OpCode, body: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(body);
        Ok(match op {
            OpCode::Delete
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::CloseSession
            | OpCode::Ping
            | OpCode::Auth => Response::Empty,
            OpCode::Create => Response::Create(CreateResponse::read(r)?),
            OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                Response::Create2(Create2Response::read(r)?)
            }
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl | OpCode::Check => {
                Response::Stat(Stat::read(r)?)
            }
            OpCode::GetData | OpCode::Reconfig => Response::GetData(GetDataResponse::read(r)?),
            OpCode::GetAcl => Response::GetAcl(GetAclResponse::read(r)?),
            OpCode::GetChildren => Response::GetChildren(GetChildrenResponse::read(r)?),
            OpCode::GetChildren2 => Response::GetChildren2(GetChildren2Response::read(r)?),
            OpCode::Sync => Response::Sync(SyncResponse::read(r)?),
            OpCode::Multi | OpCode::MultiRead => {
                let mut results = Vec::new();
                loop {
                    let header = MultiHeader::read(r)?;
                    if header.done {
                        break;
                    }
                    results.push(MultiResult::read(&header, r)?);
                }
                Response::Multi(results)
            }
            OpCode::AddWatch => Response::AddWatch(ErrorResponse::read(r)?),
            OpCode::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::read(r)?),
            OpCode::GetAllChildrenNumber => {
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::read(r)?)
            }
            OpCode::WhoAmI => Response::WhoAmI(WhoAmIResponse::read(r)?),
            OpCode::Notification => Response::Event(WatcherEvent::read(r)?),
            OpCode::DeleteContainer | OpCode::Sasl | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpCode(op.code()))
            }
        })
    }
}

/// Encodes one reply frame; `body` is written only when `header.err == 0`.
pub fn encode_reply(header: &ReplyHeader, body: &Response) -> Vec<u8> {
    let mut w = Writer::for_frame();
    header.write(&mut w);
    if header.err == 0 {
        body.write_body(&mut w);
    }
    w.into_frame()
}

/// Decodes a reply frame body into its header and raw body bytes.
pub fn decode_reply_header(frame: &[u8]) -> Result<(ReplyHeader, &[u8]), DecodeError> {
    let mut r = Reader::new(frame);
    let header = ReplyHeader::read(&mut r)?;
    Ok((header, &frame[r.position()..]))
}

/// Encodes a connect response frame.
pub fn encode_connect_response(rsp: &ConnectResponse) -> Vec<u8> {
    let mut w = Writer::for_frame();
    rsp.write(&mut w);
    w.into_frame()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{ErrorCode, EventType, KeeperState};

    #[test]
    fn golden_notification() {
        let frame = encode_reply(
            &ReplyHeader {
                xid: -1,
                zxid: -1,
                err: 0,
            },
            &Response::Event(WatcherEvent {
                event_type: EventType::NodeCreated.code(),
                state: KeeperState::SyncConnected.code(),
                path: "/x".into(),
            }),
        );
        let mut expected = vec![0, 0, 0, 30];
        expected.extend_from_slice(&[0xff; 4]); // xid -1
        expected.extend_from_slice(&[0xff; 8]); // zxid -1
        expected.extend_from_slice(&[0, 0, 0, 0]); // err
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2, b'/', b'x']);
        assert_eq!(frame, expected);
    }

    #[test]
    fn error_reply_has_no_body() {
        let frame = encode_reply(
            &ReplyHeader {
                xid: 7,
                zxid: 9,
                err: ErrorCode::NoNode.code(),
            },
            &Response::Stat(Stat::default()),
        );
        assert_eq!(frame.len(), 4 + 16);
    }

    #[test]
    fn golden_failed_multi() {
        let body = Response::Multi(vec![
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::NoNode.code()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ]);
        let mut w = Writer::new();
        body.write_body(&mut w);
        let bytes = w.into_bytes();
        #[rustfmt::skip]
        let expected = [
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, // header(-1, false, 0) + err 0
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b, 0xff, 0xff, 0xff, 0x9b,
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfe,
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // done
        ];
        assert_eq!(bytes, expected);
        assert_eq!(Response::decode_body(OpCode::Multi, &bytes), Ok(body));
    }

    #[test]
    fn add_watch_body_is_four_bytes() {
        let mut w = Writer::new();
        Response::AddWatch(ErrorResponse { err: 0 }).write_body(&mut w);
        assert_eq!(w.into_bytes(), [0, 0, 0, 0]);
    }
}
