//! A minimal pipelining ZooKeeper client: just what the load generator needs, built on
//! our own codec so it speaks to any ZooKeeper-compatible server.
//!
//! Contract: [`Session::connect`] opens a TCP connection and performs the handshake
//! (protocol version 0, a new session). Requests carry increasing positive xids; a
//! ZooKeeper server answers one session's requests in the order it received them, so
//! replies are matched to requests by position and their xids checked. Watch
//! notifications (xid -1) and ping replies (xid -2) are skipped. A session can be split
//! into a [`ReplyReader`] and a [`RequestWriter`] so that one task sends while another
//! receives, and reassembled with [`Session::from_parts`] to close it.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::protocol::response::decode_reply_header;
use crate::protocol::{
    split_frame, xid, ConnectRequest, ConnectResponse, DecodeError, FrameStatus, Record,
    ReplyHeader, Request, Response, Writer,
};

/// Largest reply accepted: generous, because a `getChildren` of a bench root that
/// collected many created nodes can exceed ZooKeeper's 1 MiB request limit.
const MAX_REPLY: usize = 64 << 20;

/// Why talking to a server failed.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("{addr} refused the session (handshake answered with session id 0)")]
    Refused { addr: String },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("no reply from {addr} within {after:?}")]
    ReplyTimeout { addr: String, after: Duration },
    #[error("{addr} announced a reply frame of {len} bytes (limit {MAX_REPLY})")]
    BadFrame { addr: String, len: i64 },
    #[error("malformed reply from {addr}: {source}")]
    Decode {
        addr: String,
        #[source]
        source: DecodeError,
    },
    #[error("{addr} answered xid {got} where xid {expected} was due")]
    OutOfOrder {
        addr: String,
        expected: i32,
        got: i32,
    },
}

/// The receiving half: reads reply frames.
pub struct ReplyReader {
    addr: String,
    stream: BufReader<OwnedReadHalf>,
    frame: Vec<u8>,
}

impl ReplyReader {
    /// Reads the next frame's body into `self.frame`.
    async fn read_frame(&mut self) -> Result<(), SessionError> {
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| self.io_error(e))?;
        let len = match split_frame(&prefix, MAX_REPLY) {
            FrameStatus::Incomplete { needed } => needed,
            FrameStatus::Frame { body_len } => body_len,
            FrameStatus::TooLarge { len, .. } => {
                return Err(SessionError::BadFrame {
                    addr: self.addr.clone(),
                    len: i64::try_from(len).unwrap_or(i64::MAX),
                })
            }
            FrameStatus::Negative { len } => {
                return Err(SessionError::BadFrame {
                    addr: self.addr.clone(),
                    len: i64::from(len),
                })
            }
        };
        self.frame.resize(len, 0);
        let read = self.stream.read_exact(&mut self.frame).await;
        read.map(drop).map_err(|e| self.io_error(e))
    }

    /// The next reply to a request: its header and raw body (empty unless `err` is 0).
    pub async fn next_reply(&mut self) -> Result<(ReplyHeader, Vec<u8>), SessionError> {
        loop {
            self.read_frame().await?;
            let (header, body) =
                decode_reply_header(&self.frame).map_err(|source| SessionError::Decode {
                    addr: self.addr.clone(),
                    source,
                })?;
            if header.xid == xid::NOTIFICATION || header.xid == xid::PING {
                continue;
            }
            let body = body.to_vec();
            return Ok((header, body));
        }
    }

    /// The reply to the request sent with `expected_xid`, within `timeout`.
    pub async fn reply_to(
        &mut self,
        expected_xid: i32,
        timeout: Duration,
    ) -> Result<(ReplyHeader, Vec<u8>), SessionError> {
        let (header, body) = tokio::time::timeout(timeout, self.next_reply())
            .await
            .map_err(|_| SessionError::ReplyTimeout {
                addr: self.addr.clone(),
                after: timeout,
            })??;
        if header.xid != expected_xid {
            return Err(SessionError::OutOfOrder {
                addr: self.addr.clone(),
                expected: expected_xid,
                got: header.xid,
            });
        }
        Ok((header, body))
    }

    fn io_error(&self, source: std::io::Error) -> SessionError {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            SessionError::Closed {
                addr: self.addr.clone(),
            }
        } else {
            SessionError::Io {
                addr: self.addr.clone(),
                source,
            }
        }
    }
}

/// The sending half: numbers and writes requests.
pub struct RequestWriter {
    addr: String,
    stream: OwnedWriteHalf,
    next_xid: i32,
}

impl RequestWriter {
    /// Appends `request` as a frame to `out` and returns its xid; nothing is sent yet.
    pub fn encode(&mut self, request: &Request, out: &mut Vec<u8>) -> i32 {
        let xid = self.next_xid;
        // Positive xids only: negative ones are reserved for pings, auth and events.
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        out.extend_from_slice(&request.encode_frame(xid));
        xid
    }

    /// Writes already encoded frames.
    pub async fn send(&mut self, frames: &[u8]) -> Result<(), SessionError> {
        self.stream
            .write_all(frames)
            .await
            .map_err(|source| SessionError::Io {
                addr: self.addr.clone(),
                source,
            })
    }
}

/// One client session over one TCP connection.
pub struct Session {
    pub reader: ReplyReader,
    pub writer: RequestWriter,
    session_id: i64,
}

/// How long a reply may take before the session is declared broken.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

impl Session {
    /// Connects to `addr` (`host:port`) and opens a new session with `session_timeout`.
    pub async fn connect(addr: &str, session_timeout: Duration) -> Result<Self, SessionError> {
        let connect_timeout = Duration::from_secs(10);
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SessionError::ConnectTimeout {
                addr: addr.to_owned(),
                after: connect_timeout,
            })?
            .map_err(|source| SessionError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Small requests must not wait for Nagle: latency is what we measure.
        stream
            .set_nodelay(true)
            .map_err(|source| SessionError::Io {
                addr: addr.to_owned(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut reader = ReplyReader {
            addr: addr.to_owned(),
            stream: BufReader::with_capacity(64 * 1024, read),
            frame: Vec::new(),
        };
        let mut writer = RequestWriter {
            addr: addr.to_owned(),
            stream: write,
            next_xid: 1,
        };

        let handshake = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: i32::try_from(session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let mut w = Writer::for_frame();
        handshake.write(&mut w);
        writer.send(&w.into_frame()).await?;
        tokio::time::timeout(connect_timeout, reader.read_frame())
            .await
            .map_err(|_| SessionError::ConnectTimeout {
                addr: addr.to_owned(),
                after: connect_timeout,
            })??;
        let answer =
            ConnectResponse::from_bytes(&reader.frame).map_err(|source| SessionError::Decode {
                addr: addr.to_owned(),
                source,
            })?;
        if answer.session_id == 0 {
            return Err(SessionError::Refused {
                addr: addr.to_owned(),
            });
        }
        Ok(Self {
            reader,
            writer,
            session_id: answer.session_id,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    pub fn addr(&self) -> &str {
        &self.reader.addr
    }

    /// Reassembles a session split into its halves.
    pub fn from_parts(reader: ReplyReader, writer: RequestWriter, session_id: i64) -> Self {
        Self {
            reader,
            writer,
            session_id,
        }
    }

    /// Sends one request and waits for its reply. The body is decoded only when the
    /// reply carries no error.
    pub async fn call(
        &mut self,
        request: &Request,
    ) -> Result<(ReplyHeader, Option<Response>), SessionError> {
        let mut frame = Vec::new();
        let xid = self.writer.encode(request, &mut frame);
        self.writer.send(&frame).await?;
        let (header, body) = self.reader.reply_to(xid, REPLY_TIMEOUT).await?;
        if header.err != 0 {
            return Ok((header, None));
        }
        let response =
            Response::decode_body(request.op(), &body).map_err(|source| SessionError::Decode {
                addr: self.reader.addr.clone(),
                source,
            })?;
        Ok((header, Some(response)))
    }

    /// Sends `requests` with up to `window` of them awaiting replies at once and
    /// returns each one's error code (0 for success), in order.
    pub async fn pipeline(
        &mut self,
        requests: impl IntoIterator<Item = Request>,
        window: usize,
    ) -> Result<Vec<i32>, SessionError> {
        let mut requests = requests.into_iter().peekable();
        let mut pending = std::collections::VecDeque::new();
        let mut codes = Vec::new();
        let mut frames = Vec::new();
        while requests.peek().is_some() || !pending.is_empty() {
            frames.clear();
            while pending.len() < window.max(1) {
                let Some(request) = requests.next() else {
                    break;
                };
                pending.push_back(self.writer.encode(&request, &mut frames));
            }
            if !frames.is_empty() {
                self.writer.send(&frames).await?;
            }
            if let Some(xid) = pending.pop_front() {
                let (header, _) = self.reader.reply_to(xid, REPLY_TIMEOUT).await?;
                codes.push(header.err);
            }
        }
        Ok(codes)
    }

    /// Closes the session on the server (its ephemerals go at once, not at expiry).
    pub async fn close(mut self) -> Result<(), SessionError> {
        match self.call(&Request::CloseSession).await {
            Ok(_) | Err(SessionError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
