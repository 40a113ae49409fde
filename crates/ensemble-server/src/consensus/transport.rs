//! The peer transport: TCP between members.
//!
//! Contract:
//! - One persistent connection per direction and pair: member A dials B for A's
//!   requests, and B's answers come back on it. The dialer's first frame is
//!   `Hello { from }`.
//! - A frame is a `u32` little-endian length and a body encoded with postcard;
//!   requests carry an id, answers name it, so requests are pipelined. A frame
//!   larger than [`MAX_FRAME`] or that does not decode closes that connection only.
//! - [`Faults`] is consulted on every frame, sent or received, and on every dial: a
//!   cut link closes the connection and refuses dials, so a partition looks like a
//!   broken network to every caller.
//! - A failed dial is not retried for [`RECONNECT_BACKOFF`] (calls fail at once
//!   meanwhile); openraft adds its own backoff on top.
//! - Forwarded proposals from one connection are handed to the serving member in
//!   frame order ([`Service::propose`] is called inline, in the read loop), so one
//!   member's proposals reach the leader's log in the order they were sent.
//! - Streamed appends ([`Request::StreamAppend`]) from one connection form one ordered
//!   stream on the serving member ([`Service::append_stream`]): they reach its Raft
//!   core in frame order and are answered in that order, so the leader can send the
//!   next append without waiting for the last one's answer. An append the stream
//!   refuses ends the stream; appends already queued behind it are answered
//!   `Failed`, and the next one opens a new stream.
//! - When a connection a peer dialled closes, the serving member is told
//!   ([`Service::peer_closed`]); [`Peer::accepts`] then tells a peer that is gone
//!   from one that merely dropped a connection.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::types::{decode, encode_into, SnapshotMeta, Vote, C};
use super::{Faults, MemberId};

/// Frames above this size are refused (the largest are appends of many large
/// commands; snapshots travel in chunks).
pub(crate) const MAX_FRAME: usize = 1 << 30;
/// Bytes read from a peer's connection at a time; frames that arrive together are
/// read with one system call.
const READ_BUFFER: usize = 64 << 10;
/// How long a connection [`Peer::accepts`] opens must stay open.
pub(crate) const ACCEPT_SETTLE: Duration = Duration::from_millis(20);
/// How long a failed dial keeps later calls from dialling again.
pub(crate) const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// A request from one member to another.
#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    Append(openraft::raft::AppendEntriesRequest<C>),
    /// An append of the sender's ordered stream; see the module contract.
    StreamAppend(openraft::raft::AppendEntriesRequest<C>),
    Vote(openraft::raft::VoteRequest<C>),
    /// A whole snapshot in one frame, as members of earlier releases send it (a
    /// rolling upgrade has both); this release sends [`Request::SnapshotChunk`]s.
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    TransferLeader(openraft::raft::TransferLeaderRequest<C>),
    /// A command of the sender's ordered proposal stream.
    Propose(#[serde(with = "serde_bytes")] Vec<u8>),
    ReadIndex,
    Change(Change),
    LeaderMessage(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Whether the receiver would grant this vote; answered with `Response::Vote`.
    /// Last, so that the variants before it keep their numbers on the wire.
    PreVote(openraft::raft::VoteRequest<C>),
    /// `data` is the snapshot's bytes from `offset`, of `total`; answered
    /// `Response::Done` until the last, whose answer is `Response::Snapshot` once it
    /// is installed (see `transfer`).
    SnapshotChunk {
        vote: Vote,
        meta: SnapshotMeta,
        total: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A membership change answered with the membership after it
    /// ([`Response::Membership`]), which the asking member may never see applied: it is
    /// sent only by a member that the change removes (members of earlier releases do
    /// not read it, so any other change goes as [`Request::Change`]).
    ChangeAndReport(Change),
}

/// A membership change forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Change {
    AddLearner(MemberId, String),
    /// `Voters` promoting this learner alone, in the form earlier releases read too.
    Promote(MemberId),
    /// `Voters` removing this member alone, in the form earlier releases read too.
    Remove(MemberId),
    TransferLeadership(MemberId),
    /// Learners made voters and members (voters or learners) removed, in one change of
    /// the voters.
    Voters {
        promote: BTreeSet<MemberId>,
        remove: BTreeSet<MemberId>,
    },
}

/// The answer to a [`Request`].
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    Append(openraft::raft::AppendEntriesResponse<C>),
    StreamAppend(openraft::raft::StreamAppendResult<C>),
    Vote(openraft::raft::VoteResponse<C>),
    Snapshot(openraft::raft::SnapshotResponse<C>),
    TransferLeader(openraft::raft::TransferLeaderResponse<C>),
    Done,
    ReadIndex(u64),
    Failed(WireError),
    /// The answer to [`Request::ChangeAndReport`].
    Membership(super::Membership),
}

/// A refusal, as it crosses the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    NotLeader,
    UnknownMember(MemberId),
    AlreadyMember(MemberId),
    NotCaughtUp { id: MemberId, lag: u64 },
    ChangeInProgress,
    LastVoter(MemberId),
    Timeout,
    Stopped,
    Other(String),
}

#[derive(Serialize, Deserialize)]
enum Frame {
    Hello { from: MemberId },
    Request { id: u64, body: Request },
    Response { id: u64, body: Response },
}

/// What the serving member does with requests.
pub(crate) trait Service: Send + Sync + 'static {
    /// Hands a forwarded proposal to Raft (the outer future, awaited in frame order);
    /// the inner future resolves once its fate is known.
    fn propose(
        self: Arc<Self>,
        from: MemberId,
        command: Vec<u8>,
    ) -> BoxFuture<'static, BoxFuture<'static, Response>>;
    /// Feeds `appends` to Raft in order; yields one answer per append, in order, and
    /// ends after the first that is not a success.
    fn append_stream(
        self: Arc<Self>,
        appends: BoxStream<'static, openraft::raft::AppendEntriesRequest<C>>,
    ) -> BoxStream<'static, Response>;
    /// Any other request.
    fn handle(self: Arc<Self>, from: MemberId, request: Request) -> BoxFuture<'static, Response>;
    /// The connection `from` dialled to this member has closed (not called when this
    /// member stops).
    fn peer_closed(self: Arc<Self>, from: MemberId);
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("member {0} is unreachable: {1}")]
    Unreachable(MemberId, String),
    #[error("connection to member {0} lost")]
    Lost(MemberId),
    #[error("member {0} did not answer in time")]
    Timeout(MemberId),
}

/// Appends `frame` to `out` as one length-prefixed frame, or fails (leaving `out`
/// as it was) if it cannot be encoded or is too large.
fn put_frame(out: &mut Vec<u8>, frame: &Frame) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_into(out, frame).inspect_err(|_| out.truncate(start))?;
    let len = out.len() - start - 4;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Frames queued together are written together, up to this many bytes: one system
/// call and one wake-up of the reader instead of one per frame.
const WRITE_BATCH: usize = 1 << 20;

/// Writes the frames of `frames` to `out` until `frames` ends, `stop` is cancelled,
/// a write fails or `link_cut()`; then cancels `stop`.
async fn write_frames(
    mut out: impl AsyncWriteExt + Unpin,
    mut frames: mpsc::UnboundedReceiver<Frame>,
    stop: CancellationToken,
    link_cut: impl Fn() -> bool,
) {
    let mut batch = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = frames.recv() => frame,
        };
        let Some(mut frame) = frame else { break };
        batch.clear();
        loop {
            if put_frame(&mut batch, &frame).is_err() {
                stop.cancel();
                return;
            }
            if batch.len() >= WRITE_BATCH {
                break;
            }
            match frames.try_recv() {
                Ok(next) => frame = next,
                Err(_) => break,
            }
        }
        if link_cut() || out.write_all(&batch).await.is_err() {
            break;
        }
    }
    stop.cancel();
}

async fn read_frame(input: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Frame> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).await?;
    decode(&body)
}

fn cut(faults: &Option<Faults>, a: MemberId, b: MemberId) -> bool {
    faults.as_ref().is_some_and(|f| f.is_cut(a, b))
}

/// One dialled connection to a peer.
pub(crate) struct Connection {
    peer: MemberId,
    out: mpsc::UnboundedSender<Frame>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    cancel: CancellationToken,
}

impl Connection {
    /// The member this connection was dialled to.
    pub(crate) fn peer(&self) -> MemberId {
        self.peer
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Sends `request` and waits up to `timeout` for its answer.
    pub(crate) async fn call(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let rx = self.send(request)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(CallError::Lost(self.peer)),
            Err(_) => Err(CallError::Timeout(self.peer)),
        }
    }

    /// Sends `request`; the receiver gets its answer, or is dropped if the connection dies.
    pub(crate) fn send(&self, request: Request) -> Result<oneshot::Receiver<Response>, CallError> {
        if self.is_closed() {
            return Err(CallError::Lost(self.peer));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if self.out.send(Frame::Request { id, body: request }).is_err() {
            self.close();
            return Err(CallError::Lost(self.peer));
        }
        Ok(rx)
    }
}

/// The dialling side towards one peer: its current connection, redialled as needed.
pub(crate) struct Peer {
    me: MemberId,
    id: MemberId,
    address: Mutex<String>,
    faults: Option<Faults>,
    current: tokio::sync::Mutex<Option<Arc<Connection>>>,
    last_failure: Mutex<Option<Instant>>,
    /// The greatest commit index this peer waits to learn (see [`Peer::want_commit`]).
    commit_wanted: AtomicU64,
    commit_kick: tokio::sync::Notify,
}

impl Peer {
    /// Tells the stream of appends to this peer that the peer waits to learn that
    /// `index` is committed (it waits to apply a write it forwarded, or to serve a
    /// read at that index), so a commit notice must not be held back.
    pub(crate) fn want_commit(&self, index: u64) {
        self.commit_wanted.fetch_max(index, Ordering::Relaxed);
        self.commit_kick.notify_one();
    }

    /// The greatest commit index asked for with [`Peer::want_commit`].
    pub(crate) fn wanted_commit(&self) -> u64 {
        self.commit_wanted.load(Ordering::Relaxed)
    }

    /// Resolves at the next [`Peer::want_commit`] (at once if one came since the last
    /// time this resolved).
    pub(crate) async fn commit_wanted(&self) {
        self.commit_kick.notified().await
    }

    pub(crate) fn set_address(&self, address: &str) {
        let mut current = self.address.lock().unwrap_or_else(|p| p.into_inner());
        if *current != address {
            *current = address.to_string();
        }
    }

    /// The live connection, dialling a new one if there is none.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, CallError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        *current = None;
        let recent = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < RECONNECT_BACKOFF);
        if recent {
            return Err(CallError::Unreachable(
                self.id,
                "backing off after a failed dial".into(),
            ));
        }
        match self.dial().await {
            Ok(conn) => {
                *current = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                Err(CallError::Unreachable(self.id, e.to_string()))
            }
        }
    }

    /// Sends `request` on the current connection and waits for the answer.
    pub(crate) async fn call(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let conn = self.connection().await?;
        conn.call(request, timeout).await
    }

    /// The peer's address: a member's address may carry `;clientHost:clientPort` after
    /// its peer address.
    fn peer_address(&self) -> String {
        let address = self.address.lock().unwrap_or_else(|p| p.into_inner());
        address.split(';').next().unwrap_or_default().to_owned()
    }

    /// Whether the peer accepts a new connection within `timeout` and keeps it open
    /// for [`ACCEPT_SETTLE`] (it is then closed unused). Unlike [`Peer::connection`],
    /// never answered by a connection whose close this member has not noticed yet,
    /// nor by the dial backoff. The wait matters: a process being killed closes its
    /// sockets one by one, and its listener may still queue a connection that it
    /// resets a moment later.
    pub(crate) async fn accepts(&self, timeout: Duration) -> bool {
        if cut(&self.faults, self.me, self.id) {
            return false;
        }
        let dial = TcpStream::connect(self.peer_address());
        let Ok(Ok(mut stream)) = tokio::time::timeout(timeout, dial).await else {
            return false;
        };
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(ACCEPT_SETTLE, stream.read(&mut byte)).await;
        !matches!(closed, Ok(Ok(0) | Err(_)))
    }

    async fn dial(&self) -> io::Result<Arc<Connection>> {
        if cut(&self.faults, self.me, self.id) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "link cut by a fault",
            ));
        }
        let address = self.peer_address();
        let stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&address))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, format!("dialling {address}"))
            })??;
        stream.set_nodelay(true)?;
        let (reader, mut writer) = stream.into_split();
        let mut hello = Vec::new();
        put_frame(&mut hello, &Frame::Hello { from: self.me })?;
        writer.write_all(&hello).await?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
        let (out, out_rx) = mpsc::unbounded_channel::<Frame>();
        let conn = Arc::new(Connection {
            peer: self.id,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            cancel: CancellationToken::new(),
        });
        let (me, peer, faults) = (self.me, self.id, self.faults.clone());
        let writing = conn.clone();
        tokio::spawn(async move {
            let stop = writing.cancel.clone();
            write_frames(writer, out_rx, stop, || cut(&faults, me, peer)).await;
            writing.close();
        });
        let reading = conn.clone();
        let faults = self.faults.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = reading.cancel.cancelled() => break,
                    frame = read_frame(&mut reader) => frame,
                };
                match frame {
                    Ok(Frame::Response { id, body }) if !cut(&faults, me, peer) => {
                        let waiter = reading
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(body);
                        }
                    }
                    Ok(_) | Err(_) => break,
                }
            }
            reading.close();
        });
        Ok(conn)
    }
}

/// Every peer this member dials, by id.
pub(crate) struct Peers {
    me: MemberId,
    faults: Option<Faults>,
    peers: Mutex<HashMap<MemberId, Arc<Peer>>>,
}

impl Peers {
    pub(crate) fn new(me: MemberId, faults: Option<Faults>) -> Self {
        Peers {
            me,
            faults,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The peer `id` at `address` (updating a known peer's address).
    pub(crate) fn get(&self, id: MemberId, address: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let peer = peers.entry(id).or_insert_with(|| {
            Arc::new(Peer {
                me: self.me,
                id,
                address: Mutex::new(address.to_string()),
                faults: self.faults.clone(),
                current: tokio::sync::Mutex::new(None),
                last_failure: Mutex::new(None),
                commit_wanted: AtomicU64::new(0),
                commit_kick: tokio::sync::Notify::new(),
            })
        });
        peer.set_address(address);
        peer.clone()
    }

    /// [`Peer::want_commit`] on peer `id`, if it is known.
    pub(crate) fn want_commit(&self, id: MemberId, index: u64) {
        let peer = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(peer) = peer {
            peer.want_commit(index);
        }
    }

    /// Closes every connection.
    pub(crate) fn close_all(&self) {
        let peers: Vec<Arc<Peer>> = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for peer in peers {
            if let Ok(current) = peer.current.try_lock() {
                if let Some(conn) = current.as_ref() {
                    conn.close();
                }
            }
        }
    }
}

/// Serves peers on `listener` until `stop` is cancelled.
pub(crate) async fn serve<S: Service>(
    me: MemberId,
    listener: TcpListener,
    service: Arc<S>,
    faults: Option<Faults>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            me,
            stream,
            service.clone(),
            faults.clone(),
            stop.clone(),
        ));
    }
}

async fn serve_connection<S: Service>(
    me: MemberId,
    stream: TcpStream,
    service: Arc<S>,
    faults: Option<Faults>,
    stop: CancellationToken,
) {
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let from = match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut reader)).await {
        Ok(Ok(Frame::Hello { from })) => from,
        _ => return,
    };
    if cut(&faults, me, from) {
        return;
    }
    let done = stop.child_token();
    let (out, out_rx) = mpsc::unbounded_channel::<Frame>();
    let writer_faults = faults.clone();
    tokio::spawn(write_frames(writer, out_rx, done.clone(), move || {
        cut(&writer_faults, me, from)
    }));
    let mut appends: Option<mpsc::UnboundedSender<(u64, AppendRequest)>> = None;
    loop {
        let frame = tokio::select! {
            _ = done.cancelled() => break,
            frame = read_frame(&mut reader) => frame,
        };
        let (id, body) = match frame {
            Ok(Frame::Request { id, body }) if !cut(&faults, me, from) => (id, body),
            Ok(_) => break,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    tracing::warn!(from, error = %e, "malformed frame from a peer; closing its connection");
                }
                break;
            }
        };
        let pending = match body {
            Request::StreamAppend(rpc) => {
                // Into the open stream, or a new one if it ended (closed its end).
                let mut append = (id, rpc);
                if let Some(stream) = &appends {
                    match stream.send(append) {
                        Ok(()) => continue,
                        Err(mpsc::error::SendError(back)) => append = back,
                    }
                }
                let (stream, requests) = mpsc::unbounded_channel();
                tokio::spawn(serve_append_stream(service.clone(), requests, out.clone()));
                let _ = stream.send(append);
                appends = Some(stream);
                continue;
            }
            Request::Propose(command) => service.clone().propose(from, command).await,
            other => service.clone().handle(from, other),
        };
        let out = out.clone();
        tokio::spawn(async move {
            let body = pending.await;
            let _ = out.send(Frame::Response { id, body });
        });
    }
    done.cancel();
    if !stop.is_cancelled() {
        service.peer_closed(from);
    }
}

type AppendRequest = openraft::raft::AppendEntriesRequest<C>;

/// One connection's stream of appends (see the module contract): forwards each to
/// the service's stream and sends its answer under its request id.
async fn serve_append_stream<S: Service>(
    service: Arc<S>,
    mut requests: mpsc::UnboundedReceiver<(u64, AppendRequest)>,
    out: mpsc::UnboundedSender<Frame>,
) {
    let (input, input_rx) = mpsc::unbounded_channel();
    let input_rx = futures_util::stream::unfold(input_rx, |mut rx| async move {
        rx.recv().await.map(|rpc| (rpc, rx))
    });
    let mut answers = service.append_stream(input_rx.boxed());
    let mut waiting = VecDeque::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((id, rpc)) = request else { break };
                waiting.push_back(id);
                if input.send(rpc).is_err() {
                    break;
                }
            }
            answer = answers.next(), if !waiting.is_empty() => {
                let id = waiting.pop_front().expect("an append is waiting");
                let body = answer.unwrap_or(Response::Failed(WireError::Stopped));
                if !matches!(body, Response::StreamAppend(Ok(_))) {
                    // Closed before the refusal goes out, so that whatever the
                    // sender sends once it has seen it opens a new stream.
                    requests.close();
                    let _ = out.send(Frame::Response { id, body });
                    break;
                }
                let _ = out.send(Frame::Response { id, body });
            }
        }
    }
    // The stream ended: refuse what is queued behind it. Closing `requests` makes the
    // connection open a new stream for the next append.
    requests.close();
    drop(input);
    while let Ok((id, _)) = requests.try_recv() {
        waiting.push_back(id);
    }
    for id in waiting {
        let body = Response::Failed(WireError::Stopped);
        let _ = out.send(Frame::Response { id, body });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accepts(address: &str) -> bool {
        let peers = Peers::new(1, None);
        peers.get(2, address).accepts(Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn frames_written_together_are_read_apart_in_order() {
        let mut batch = Vec::new();
        put_frame(&mut batch, &Frame::Hello { from: 7 }).unwrap();
        let proposal = Request::Propose(vec![1, 2, 3]);
        put_frame(
            &mut batch,
            &Frame::Request {
                id: 9,
                body: proposal,
            },
        )
        .unwrap();
        let mut input = BufReader::new(&batch[..]);
        assert!(matches!(
            read_frame(&mut input).await.unwrap(),
            Frame::Hello { from: 7 }
        ));
        match read_frame(&mut input).await.unwrap() {
            Frame::Request {
                id: 9,
                body: Request::Propose(command),
            } => assert_eq!(command, [1, 2, 3]),
            _ => panic!("the second frame changed"),
        }
        let end = read_frame(&mut input).await;
        assert!(end.is_err_and(|e| e.kind() == io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn a_listening_peer_accepts_and_a_gone_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        // A member's address with its client part, as the membership stores it.
        assert!(accepts(&format!("{address};127.0.0.1:1")).await);
        drop(listener);
        assert!(!accepts(&address).await);
    }

    #[tokio::test]
    async fn a_connection_reset_at_once_is_not_accepted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let closing = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
            drop(listener);
        });
        assert!(!accepts(&address).await);
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn a_cut_link_is_not_accepted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let faults = Faults::default();
        faults.cut(1, 2);
        let peers = Peers::new(1, Some(faults));
        assert!(!peers.get(2, &address).accepts(Duration::from_secs(1)).await);
    }
}
