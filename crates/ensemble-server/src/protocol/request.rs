//! Client requests: a [`RequestHeader`] (xid, opcode) followed by the opcode's body.
//!
//! Contract: [`Request::decode`] turns (header, body) into a typed [`Request`] or a
//! [`DecodeError`] (an unknown opcode is `DecodeError::UnknownOpCode`, never a panic).
//! Like ZooKeeper, bytes after a complete body are ignored. [`Request::encode`] is the
//! inverse, used by clients (the load generator, tests). Multi bodies are a sequence of
//! (`MultiHeader`, op record) ended by a `MultiHeader` with `done` set; ZooKeeper
//! rejects a multi that mixes reads and writes, and so do we.

use super::codes::OpCode;
use super::jute::{DecodeError, Reader, Record, Writer};
use super::records::*;

/// One operation inside a multi (opcode 14) or multiRead (opcode 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// `op` is `Create`, `Create2` or `CreateContainer`.
    Create {
        op: OpCode,
        req: CreateRequest,
    },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetChildren(GetChildrenRequest),
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn op(&self) -> OpCode {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { req, .. } => &req.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn read(op: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = OpCode::from_i32(op).ok_or(DecodeError::InvalidMultiOp(op))?;
        Ok(match code {
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => MultiOp::Create {
                op: code,
                req: CreateRequest::read(r)?,
            },
            OpCode::CreateTtl => MultiOp::CreateTtl(CreateTtlRequest::read(r)?),
            OpCode::Delete => MultiOp::Delete(DeleteRequest::read(r)?),
            OpCode::SetData => MultiOp::SetData(SetDataRequest::read(r)?),
            OpCode::Check => MultiOp::Check(CheckVersionRequest::read(r)?),
            OpCode::GetChildren => MultiOp::GetChildren(GetChildrenRequest::read(r)?),
            OpCode::GetData => MultiOp::GetData(GetDataRequest::read(r)?),
            _ => return Err(DecodeError::InvalidMultiOp(op)),
        })
    }

    fn write(&self, w: &mut Writer) {
        match self {
            MultiOp::Create { req, .. } => req.write(w),
            MultiOp::CreateTtl(r) => r.write(w),
            MultiOp::Delete(r) => r.write(w),
            MultiOp::SetData(r) => r.write(w),
            MultiOp::Check(r) => r.write(w),
            MultiOp::GetChildren(r) => r.write(w),
            MultiOp::GetData(r) => r.write(w),
        }
    }
}

const MULTI_END: MultiHeader = MultiHeader {
    op: -1,
    done: true,
    err: -1,
};

fn read_multi(r: &mut Reader<'_>) -> Result<Vec<MultiOp>, DecodeError> {
    let mut ops: Vec<MultiOp> = Vec::new();
    loop {
        let header = MultiHeader::read(r)?;
        if header.done {
            return Ok(ops);
        }
        let op = MultiOp::read(header.op, r)?;
        if let Some(first) = ops.first() {
            if first.is_read() != op.is_read() {
                return Err(DecodeError::MixedMulti);
            }
        }
        ops.push(op);
    }
}

fn write_multi(ops: &[MultiOp], w: &mut Writer) {
    for op in ops {
        MultiHeader {
            op: op.op().code(),
            done: false,
            err: -1,
        }
        .write(w);
        op.write(w);
    }
    MULTI_END.write(w);
}

/// A decoded client request (everything after the connect handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    Sync(SyncRequest),
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    WhoAmI,
    Auth(AuthPacket),
    Ping,
    CloseSession,
}

impl Request {
    pub fn op(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::Auth(_) => OpCode::Auth,
            Request::Ping => OpCode::Ping,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// True for operations that change the tree (and so become a transaction).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// Decodes the body of a request whose header announced `op`.
    pub fn decode_body(op: i32, body: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(body);
        let code = OpCode::from_i32(op).ok_or(DecodeError::UnknownOpCode(op))?;
        Ok(match code {
            OpCode::Create => Request::Create(CreateRequest::read(r)?),
            OpCode::Create2 => Request::Create2(CreateRequest::read(r)?),
            OpCode::CreateContainer => Request::CreateContainer(CreateRequest::read(r)?),
            OpCode::CreateTtl => Request::CreateTtl(CreateTtlRequest::read(r)?),
            OpCode::Delete => Request::Delete(DeleteRequest::read(r)?),
            OpCode::Exists => Request::Exists(ExistsRequest::read(r)?),
            OpCode::GetData => Request::GetData(GetDataRequest::read(r)?),
            OpCode::SetData => Request::SetData(SetDataRequest::read(r)?),
            OpCode::GetAcl => Request::GetAcl(GetAclRequest::read(r)?),
            OpCode::SetAcl => Request::SetAcl(SetAclRequest::read(r)?),
            OpCode::GetChildren => Request::GetChildren(GetChildrenRequest::read(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(GetChildren2Request::read(r)?),
            OpCode::Sync => Request::Sync(SyncRequest::read(r)?),
            OpCode::Check => Request::Check(CheckVersionRequest::read(r)?),
            OpCode::Multi => Request::Multi(read_multi(r)?),
            OpCode::MultiRead => Request::MultiRead(read_multi(r)?),
            OpCode::Reconfig => Request::Reconfig(ReconfigRequest::read(r)?),
            OpCode::CheckWatches => Request::CheckWatches(CheckWatchesRequest::read(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::read(r)?),
            OpCode::SetWatches => Request::SetWatches(SetWatches::read(r)?),
            OpCode::SetWatches2 => Request::SetWatches2(SetWatches2::read(r)?),
            OpCode::AddWatch => Request::AddWatch(AddWatchRequest::read(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::read(r)?),
            OpCode::GetAllChildrenNumber => {
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::read(r)?)
            }
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::Auth => Request::Auth(AuthPacket::read(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::Sasl
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::UnknownOpCode(op)),
        })
    }

    /// Decodes a whole frame body: header, then the request.
    pub fn decode(frame: &[u8]) -> Result<(RequestHeader, Self), DecodeError> {
        let mut r = Reader::new(frame);
        let header = RequestHeader::read(&mut r)?;
        let body = &frame[r.position()..];
        let request = Self::decode_body(header.op, body)?;
        Ok((header, request))
    }

    /// Writes the body (no header).
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.write(w),
            Request::CreateTtl(r) => r.write(w),
            Request::Delete(r) => r.write(w),
            Request::Exists(r) => r.write(w),
            Request::GetData(r) => r.write(w),
            Request::SetData(r) => r.write(w),
            Request::GetAcl(r) => r.write(w),
            Request::SetAcl(r) => r.write(w),
            Request::GetChildren(r) => r.write(w),
            Request::GetChildren2(r) => r.write(w),
            Request::Sync(r) => r.write(w),
            Request::Check(r) => r.write(w),
            Request::Multi(ops) | Request::MultiRead(ops) => write_multi(ops, w),
            Request::Reconfig(r) => r.write(w),
            Request::CheckWatches(r) => r.write(w),
            Request::RemoveWatches(r) => r.write(w),
            Request::SetWatches(r) => r.write(w),
            Request::SetWatches2(r) => r.write(w),
            Request::AddWatch(r) => r.write(w),
            Request::GetEphemerals(r) => r.write(w),
            Request::GetAllChildrenNumber(r) => r.write(w),
            Request::Auth(r) => r.write(w),
            Request::WhoAmI | Request::Ping | Request::CloseSession => {}
        }
    }

    /// Encodes header and body as one length-prefixed frame.
    pub fn encode_frame(&self, xid: i32) -> Vec<u8> {
        let mut w = Writer::for_frame();
        RequestHeader {
            xid,
            op: self.op().code(),
        }
        .write(&mut w);
        self.write_body(&mut w);
        w.into_frame()
    }
}

/// The decoder entry point for fuzzing (`cargo fuzz`): splits `data` into frames and
/// decodes each as the server would (the first as a connect request, the rest as
/// requests), ignoring the results. It must return normally for every input.
pub fn fuzz_decode(data: &[u8]) {
    use super::frame::{split_frame, FrameStatus, DEFAULT_MAX_FRAME, LENGTH_PREFIX};
    let mut rest = data;
    let mut first = true;
    while let FrameStatus::Frame { body_len } = split_frame(rest, DEFAULT_MAX_FRAME) {
        let body = &rest[LENGTH_PREFIX..LENGTH_PREFIX + body_len];
        if first {
            let _ = ConnectRequest::from_bytes(body);
            first = false;
        } else if let Ok((_, request)) = Request::decode(body) {
            // Re-encoding a decoded request must not panic either.
            let _ = request.encode_frame(0);
        }
        rest = &rest[LENGTH_PREFIX + body_len..];
    }
    // Also try the raw bytes as a request and as a response of every kind.
    let _ = Request::decode(data);
    for op in OpCode::ALL {
        let _ = super::response::Response::decode_body(*op, data);
    }
}
