//! One client connection: read frames, run them in order, write replies and
//! notifications in the order they were queued.
//!
//! Contract: the first frame must be a ConnectRequest (with or without the trailing
//! readOnly byte; the answer has the same form). Frames that arrive before the
//! ConnectResponse is written are queued behind it and processed in order, so
//! replies go out strictly in request order. Before any frame, a four-letter word
//! is answered (if whitelisted) and the connection closed. A malformed, negative or
//! oversized frame, an unknown session or a wrong password closes this connection
//! only. Leaving detaches the session (it lives on until it expires) and drops the
//! connection's watches.
//!
//! A member that cannot take a session yet, because it knows no leader or has not
//! applied the last zxid the client saw, holds the ConnectRequest for up to
//! [`CONNECT_WAIT`] before it refuses (closes) the connection. Both conditions
//! usually pass within tens of milliseconds (a leadership hand-over, or the commit
//! of the client's last write reaching this follower), and a client refused at once
//! would come back only after its reconnect backoff, which behind one Service
//! address is the only way back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::consensus::Role;
use crate::protocol::frame::LENGTH_PREFIX;
use crate::protocol::{
    encode_connect_response, encode_reply, split_frame, ConnectRequest, ConnectResponse,
    DecodeError, ErrorCode, FrameStatus, Id, Reader, Record, ReplyHeader, Request, RequestHeader,
    Response,
};
use crate::session::PASSWORD_LEN;
use crate::tree::{Origin, Txn};

use super::four_letter;
use super::handler::{submit, Caller};
use super::state::{ConnId, Finish, Outbound, Ready, State};
use super::stats::{ConnectionStats, InFlight};
use super::Shared;

/// Replies queued together are written together, up to this many bytes.
const WRITE_BATCH: usize = 256 << 10;

/// How long a ConnectRequest may wait for this member to be able to take it; see the
/// module contract. Well within the time clients give a connection to answer
/// (the Java client's is the session timeout divided by the number of servers).
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a connection is being closed, for the log.
#[derive(Debug)]
enum Stop {
    /// Keep reading.
    Continue,
    Close(String),
    /// Stop reading; the connection closes once the replies already queued (the
    /// last of which closes it) have gone out.
    AfterReplies(String),
}

struct Connection {
    id: ConnId,
    peer: SocketAddr,
    shared: Arc<Shared>,
    outbox: mpsc::UnboundedSender<Outbound>,
    session_id: Option<i64>,
    /// Whether any frame has been seen (four-letter words come only first).
    started: bool,
    stats: Arc<ConnectionStats>,
    /// Requests not answered yet, oldest first, with their xids: replies leave in
    /// request order, so each reply written finishes the oldest.
    in_flight: VecDeque<(i32, InFlight)>,
    /// Whether the ConnectResponse (always the first frame) has been written.
    connect_answered: bool,
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock would be a bug; the state is still the best we have.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves `stream` until the client leaves, the connection must close, or `shutdown`.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&shared.state).register_connection(id, tx.clone());
    let stats = shared.stats.open_connection(id, peer);
    let mut conn = Connection {
        id,
        peer,
        shared,
        outbox: tx,
        session_id: None,
        started: false,
        stats,
        in_flight: VecDeque::new(),
        connect_answered: false,
    };
    let (mut reader, mut writer) = stream.into_split();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut batch: Vec<u8> = Vec::new();
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            out = rx.recv() => {
                // Replies already queued go out together: one write, one wake-up of
                // the client.
                let mut close = false;
                let mut next = out;
                batch.clear();
                loop {
                    match next {
                        Some(Outbound::Frame(frame)) => {
                            // Counted before the write, so whoever reads the reply and
                            // then asks for stats sees it counted.
                            conn.stats.frame_sent();
                            conn.reply_sent(&frame);
                            batch.extend_from_slice(&frame);
                        }
                        Some(Outbound::Close) | None => {
                            close = true;
                            break;
                        }
                    }
                    if batch.len() >= WRITE_BATCH {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(more) => next = Some(more),
                        Err(_) => break,
                    }
                }
                if writer.write_all(&batch).await.is_err() || close {
                    break;
                }
            }
            read = reader.read(&mut chunk), if !closing => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if conn.session_id.is_none() && !conn.started {
                        conn.await_connectable(&buf).await;
                    }
                    match conn.process(&mut buf) {
                        Stop::Continue => {}
                        Stop::Close(reason) => {
                            tracing::debug!(conn = id, %peer, %reason, "closing connection");
                            closing = true;
                            let _ = conn.outbox.send(Outbound::Close);
                        }
                        Stop::AfterReplies(reason) => {
                            tracing::debug!(conn = id, %peer, %reason, "closing after the replies");
                            closing = true;
                        }
                    }
                }
            },
        }
    }
    // Forgotten before the peer sees the close, so a word sent next never lists it.
    conn.shared.stats.close_connection(id);
    let _ = writer.shutdown().await;
    lock(&conn.shared.state).unregister_connection(id, conn.session_id);
}

/// Why this member cannot take a session for `request` now.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Like a ZooKeeper member outside a quorum: the client tries another.
    #[error("no leader is known; not serving clients")]
    NoLeader,
    #[error("this member is being removed; not serving clients")]
    Leaving,
    /// A blank joiner, or a member removed from the ensemble: no wait makes it serve.
    #[error("this member is not in the ensemble's membership; not serving clients")]
    Outside,
    /// The client has seen a newer state than ours (ZooKeeper refuses too).
    #[error("client has seen zxid 0x{seen:x}, ours is 0x{ours:x}")]
    Behind { seen: i64, ours: i64 },
}

impl Refusal {
    /// Whether waiting a little may lift it.
    fn passes(&self) -> bool {
        !matches!(self, Refusal::Leaving | Refusal::Outside)
    }
}

fn refusal(state: &State, request: &ConnectRequest) -> Option<Refusal> {
    let status = state.consensus().map(|c| c.status());
    if status.as_ref().and_then(|s| s.leader).is_none() || state.tree.secret().is_none() {
        return Some(if status.is_some_and(|s| s.role == Role::Outside) {
            Refusal::Outside
        } else {
            Refusal::NoLeader
        });
    }
    if status.is_some_and(|s| s.is_leaving()) {
        return Some(Refusal::Leaving);
    }
    let ours = state.tree.last_zxid();
    (request.last_zxid_seen > ours).then_some(Refusal::Behind {
        seen: request.last_zxid_seen,
        ours,
    })
}

impl Connection {
    /// Once `buf` holds the ConnectRequest: waits (up to [`CONNECT_WAIT`]) while this
    /// member cannot take it for a reason that may pass; see the module contract.
    async fn await_connectable(&self, buf: &[u8]) {
        if four_letter::detect(buf).is_some() {
            return;
        }
        let FrameStatus::Frame { body_len } = split_frame(buf, self.shared.config.jute_max_buffer)
        else {
            return;
        };
        let body = buf
            .get(LENGTH_PREFIX..LENGTH_PREFIX + body_len)
            .unwrap_or_default();
        let Ok(request) = ConnectRequest::from_bytes(body) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
        // Polled: this only runs while the member is changing leader or catching up.
        while refusal(&lock(&self.shared.state), &request).is_some_and(|r| r.passes())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Finishes the oldest in-flight request's stats if `frame` is its reply
    /// (not the ConnectResponse, not a watch notification).
    fn reply_sent(&mut self, frame: &[u8]) {
        if !self.connect_answered {
            self.connect_answered = true;
            return;
        }
        let xid = frame
            .get(LENGTH_PREFIX..LENGTH_PREFIX + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if xid.is_some() && xid == self.in_flight.front().map(|(x, _)| *x) {
            if let Some((_, in_flight)) = self.in_flight.pop_front() {
                in_flight.finish(frame);
            }
        }
    }

    /// Runs every whole frame in `buf`, consuming it.
    fn process(&mut self, buf: &mut Vec<u8>) -> Stop {
        if !self.started {
            if let Some(word) = four_letter::detect(buf) {
                self.stats.four_letter_word();
                let text = four_letter::answer(word, &self.shared);
                let _ = self.outbox.send(Outbound::Frame(text.into_bytes()));
                return Stop::Close(format!("four-letter word {word}"));
            }
        }
        loop {
            let body_len = match split_frame(buf, self.shared.config.jute_max_buffer) {
                FrameStatus::Incomplete { .. } => return Stop::Continue,
                FrameStatus::TooLarge { len, max } => {
                    return Stop::Close(format!("frame of {len} bytes exceeds {max}"))
                }
                FrameStatus::Negative { len } => {
                    return Stop::Close(format!("negative frame length {len}"))
                }
                FrameStatus::Frame { body_len } => body_len,
            };
            self.started = true;
            self.stats.frame_received();
            let end = LENGTH_PREFIX + body_len;
            let body = buf.get(LENGTH_PREFIX..end).unwrap_or_default();
            let stop = match self.session_id {
                None => self.connect(body),
                Some(session_id) => self.request(session_id, body),
            };
            buf.drain(..end);
            if !matches!(stop, Stop::Continue) {
                return stop;
            }
        }
    }

    fn connect(&mut self, body: &[u8]) -> Stop {
        let request = match ConnectRequest::from_bytes(body) {
            Ok(r) => r,
            Err(e) => return Stop::Close(format!("malformed connect request: {e}")),
        };
        let mut state = lock(&self.shared.state);
        if let Some(refusal) = refusal(&state, &request) {
            return Stop::Close(refusal.to_string());
        }
        let now = state.now_ms();
        let read_only = request.read_only.map(|_| false);
        let response = |session_id, time_out, passwd| {
            encode_connect_response(&ConnectResponse {
                protocol_version: 0,
                time_out,
                session_id,
                passwd,
                read_only,
            })
        };
        if request.session_id == 0 {
            let session = state.sessions.create(request.time_out, now).clone();
            state.attach_session(session.id, self.id);
            self.stats.session_attached(session.id, session.timeout_ms);
            self.session_id = Some(session.id);
            // The session exists for clients once its creation is durable.
            let frame = response(session.id, session.timeout_ms, session.password.to_vec());
            let finish: Finish = Box::new(move |_, _| Ready {
                frame,
                close: false,
            });
            state.propose(
                Origin::system(),
                Txn::CreateSession {
                    session_id: session.id,
                    timeout_ms: session.timeout_ms,
                },
                Some((self.id, finish)),
            );
            return Stop::Continue;
        }
        match state
            .sessions
            .reconnect(request.session_id, &request.passwd, now)
        {
            Ok(time_out) => {
                state.touched(request.session_id);
                state.attach_session(request.session_id, self.id);
                self.stats.session_attached(request.session_id, time_out);
                self.session_id = Some(request.session_id);
                let frame = response(request.session_id, time_out, request.passwd.clone());
                state.respond(
                    self.id,
                    Ready {
                        frame,
                        close: false,
                    },
                );
                Stop::Continue
            }
            Err(refused) => {
                let frame = response(0, 0, vec![0; PASSWORD_LEN]);
                let _ = self.outbox.send(Outbound::Frame(frame));
                Stop::Close(refused.to_string())
            }
        }
    }

    fn request(&mut self, session_id: i64, body: &[u8]) -> Stop {
        let (header, request) = match Request::decode(body) {
            Ok(decoded) => decoded,
            // A well-formed request of an operation we do not serve (e.g. SASL) is
            // answered with Unimplemented, then the connection closes, as ZooKeeper's
            // UnimplementedRequestProcessor does.
            Err(DecodeError::UnknownOpCode(op)) => {
                match RequestHeader::read(&mut Reader::new(body)).ok() {
                    Some(header) => {
                        let mut state = lock(&self.shared.state);
                        let frame = encode_reply(
                            &ReplyHeader {
                                xid: header.xid,
                                zxid: state.tree.last_zxid(),
                                err: ErrorCode::Unimplemented.code(),
                            },
                            &Response::Empty,
                        );
                        state.respond(self.id, Ready { frame, close: true });
                        return Stop::AfterReplies(format!("unimplemented opcode {op}"));
                    }
                    None => return Stop::Close("malformed request header".into()),
                }
            }
            Err(e) => return Stop::Close(format!("malformed request: {e}")),
        };
        let caller = Caller {
            conn: self.id,
            session_id,
            ip: Id::new("ip", self.peer.ip().to_string()),
        };
        self.in_flight
            .push_back((header.xid, self.stats.begin(request.op())));
        submit(&mut lock(&self.shared.state), caller, header.xid, request);
        Stop::Continue
    }
}
