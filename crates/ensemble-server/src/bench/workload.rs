//! The three phases of a bench run against a server: set up a private root with the
//! key nodes, drive load from each session, tear everything down again.
//!
//! Contract: [`setup`] creates `root` and `keys` children `root/k<i>` holding the value.
//! [`drive`] keeps up to `in_flight` requests outstanding on one session until the
//! window closes (or `stop` is cancelled), then waits for the replies still due, and
//! tallies only requests sent inside the measured part of the window, and records when
//! every successful reply inside it arrived. When its connection fails, the requests
//! left without a reply count as `ConnectionLoss` errors (they may or may not have been
//! applied) and the session reconnects, a new session on the next address, until the
//! window closes; a failure is never fatal to the run. Created nodes are
//! `root/s<session>-<n>`; a `delete` removes this session's oldest created node (and
//! becomes a `create` when there is none). [`teardown`] deletes everything under
//! `root` and `root` itself.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::gap::Completions;
use super::mix::{Mix, OpKind};
use super::reconnect::{reconnect, Rotation};
use super::report::{error_name, Tally, MALFORMED_REPLY};
use super::session::{ReplyReader, RequestWriter, Session, SessionError, REPLY_TIMEOUT};
use super::{StepFailure, SESSION_TIMEOUT};
use crate::protocol::{
    Acl, CreateRequest, DeleteRequest, ErrorCode, ExistsRequest, GetChildrenRequest,
    GetDataRequest, Request, Response, SetDataRequest,
};

/// Requests outstanding at once during setup and teardown.
const ADMIN_WINDOW: usize = 256;

/// What the sessions of one run share.
#[derive(Debug)]
pub struct Workload {
    pub root: String,
    pub keys: Vec<String>,
    pub value: Vec<u8>,
    pub mix: Mix,
}

/// When a session sends, and which of its requests count.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Requests sent from here on are tallied (before it: warmup).
    pub measure_from: Instant,
    /// No request is sent from here on.
    pub until: Instant,
}

/// What one session leaves behind.
#[derive(Debug, Default)]
pub struct SessionOutcome {
    pub tally: Tally,
    /// When its successful operations completed, for the longest gap.
    pub completions: Completions,
    /// New sessions it opened after its connection failed.
    pub reconnects: u64,
    /// Nodes this session created and did not delete.
    pub created: Vec<String>,
}

fn create(path: String, value: &[u8]) -> Request {
    Request::Create(CreateRequest {
        path,
        data: Some(value.to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

fn delete(path: String) -> Request {
    Request::Delete(DeleteRequest { path, version: -1 })
}

/// Creates the root and the keys; on a failed create, says which.
pub async fn setup(
    session: &mut Session,
    workload: &Workload,
) -> Result<Result<(), StepFailure>, SessionError> {
    let codes = session
        .pipeline(
            std::iter::once(create(workload.root.clone(), &[])).chain(
                workload
                    .keys
                    .iter()
                    .map(|k| create(k.clone(), &workload.value)),
            ),
            ADMIN_WINDOW,
        )
        .await?;
    let paths = std::iter::once(&workload.root).chain(&workload.keys);
    Ok(match paths.zip(codes).find(|(_, code)| *code != 0) {
        Some((path, code)) => Err(StepFailure {
            path: path.clone(),
            error: error_name(code),
        }),
        None => Ok(()),
    })
}

/// Deletes `created`, the keys and the root; nodes already gone are fine.
pub async fn teardown(
    session: &mut Session,
    workload: &Workload,
    created: Vec<String>,
) -> Result<Result<(), StepFailure>, SessionError> {
    let no_node = ErrorCode::NoNode.code();
    let mut paths = created;
    paths.extend(workload.keys.iter().cloned());
    for attempt in 0..2 {
        let codes = session
            .pipeline(paths.iter().cloned().map(delete), ADMIN_WINDOW)
            .await?;
        if let Some((path, code)) = paths
            .iter()
            .zip(codes)
            .find(|(_, c)| *c != 0 && *c != no_node)
        {
            return Ok(Err(StepFailure {
                path: path.clone(),
                error: error_name(code),
            }));
        }
        let (header, _) = session.call(&delete(workload.root.clone())).await?;
        if header.err == 0 || header.err == no_node {
            return Ok(Ok(()));
        }
        if header.err != ErrorCode::NotEmpty.code() || attempt > 0 {
            return Ok(Err(StepFailure {
                path: workload.root.clone(),
                error: error_name(header.err),
            }));
        }
        // Someone (an interrupted session, a lost reply) left nodes we do not know of.
        let listing = Request::GetChildren(GetChildrenRequest {
            path: workload.root.clone(),
            watch: false,
        });
        paths = match session.call(&listing).await? {
            (_, Some(Response::GetChildren(children))) => children
                .children
                .into_iter()
                .map(|name| format!("{}/{name}", workload.root))
                .collect(),
            (header, _) => {
                return Ok(Err(StepFailure {
                    path: workload.root.clone(),
                    error: error_name(header.err),
                }))
            }
        };
    }
    Ok(Ok(()))
}

/// One request sent and awaiting its reply.
struct Sent {
    xid: i32,
    kind: OpKind,
    at: Instant,
}

/// Chooses the requests of one session.
struct Chooser<'a> {
    workload: &'a Workload,
    rng: StdRng,
    session: usize,
    next_name: u64,
    created: VecDeque<String>,
}

impl Chooser<'_> {
    fn next(&mut self) -> (OpKind, Request) {
        let w = self.workload;
        let kind = w.mix.pick(self.rng.random_range(0..w.mix.total()));
        let mut key = || w.keys[self.rng.random_range(0..w.keys.len())].clone();
        match kind {
            OpKind::Get => (
                kind,
                Request::GetData(GetDataRequest {
                    path: key(),
                    watch: false,
                }),
            ),
            OpKind::Exists => (
                kind,
                Request::Exists(ExistsRequest {
                    path: key(),
                    watch: false,
                }),
            ),
            OpKind::Set => (
                kind,
                Request::SetData(SetDataRequest {
                    path: key(),
                    data: Some(w.value.clone()),
                    version: -1,
                }),
            ),
            OpKind::Delete => match self.created.pop_front() {
                // One session's requests are applied in order, so this node's create
                // comes first even while its reply is still due.
                Some(path) => (kind, delete(path)),
                None => self.create_next(),
            },
            OpKind::Create => self.create_next(),
        }
    }

    fn create_next(&mut self) -> (OpKind, Request) {
        let w = self.workload;
        let path = format!("{}/s{}-{}", w.root, self.session, self.next_name);
        self.next_name += 1;
        self.created.push_back(path.clone());
        (OpKind::Create, create(path, &w.value))
    }
}

/// Tells a session's two halves that its connection failed.
#[derive(Clone, Default)]
struct Broken(CancellationToken);

async fn send_loop(
    writer: &mut RequestWriter,
    chooser: &mut Chooser<'_>,
    permits: &Semaphore,
    sent: &mpsc::UnboundedSender<Sent>,
    until: Instant,
    stop: &CancellationToken,
    broken: &Broken,
) -> Result<(), SessionError> {
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    let mut frames = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            () = broken.0.cancelled() => return Ok(()),
            () = &mut deadline => return Ok(()),
            permit = permits.acquire() => match permit {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()),
            },
        }
        // Every permit free now goes out in one write.
        let mut batch = 1;
        while let Ok(permit) = permits.try_acquire() {
            permit.forget();
            batch += 1;
        }
        let at = Instant::now();
        if at >= until {
            return Ok(());
        }
        frames.clear();
        for _ in 0..batch {
            let (kind, request) = chooser.next();
            let xid = writer.encode(&request, &mut frames);
            if sent.send(Sent { xid, kind, at }).is_err() {
                // The receiver has failed; its error is the one to report.
                return Ok(());
            }
        }
        writer.send(&frames).await?;
    }
}

/// What the replies of one session showed.
struct Measured<'a> {
    tally: &'a mut Tally,
    completions: &'a mut Completions,
    window: Window,
}

impl Measured<'_> {
    /// A request whose outcome is unknown because its connection failed: an error,
    /// named as ZooKeeper's clients name it.
    fn in_doubt(&mut self, request: &Sent) {
        if request.at >= self.window.measure_from {
            self.tally
                .record_error(request.kind, error_name(ErrorCode::ConnectionLoss.code()));
        }
    }
}

async fn receive_loop(
    reader: &mut ReplyReader,
    permits: &Semaphore,
    sent: &mut mpsc::UnboundedReceiver<Sent>,
    measured: &mut Measured<'_>,
    broken: &Broken,
) -> Result<(), SessionError> {
    loop {
        let request = tokio::select! {
            biased;
            () = broken.0.cancelled() => return Ok(()),
            request = sent.recv() => match request {
                Some(request) => request,
                None => return Ok(()),
            },
        };
        let reply = tokio::select! {
            biased;
            () = broken.0.cancelled() => Err(None),
            reply = reader.reply_to(request.xid, REPLY_TIMEOUT) => reply.map_err(Some),
        };
        let (header, body) = match reply {
            Ok(reply) => reply,
            Err(failure) => {
                measured.in_doubt(&request);
                return failure.map_or(Ok(()), Err);
            }
        };
        let done = Instant::now();
        let latency = done - request.at;
        permits.add_permits(1);
        let ok = header.err == 0 && Response::decode_body(request.kind.op_code(), &body).is_ok();
        if ok && done >= measured.window.measure_from {
            measured
                .completions
                .record(done - measured.window.measure_from);
        }
        if request.at < measured.window.measure_from {
            continue;
        }
        if header.err != 0 {
            measured
                .tally
                .record_error(request.kind, error_name(header.err));
        } else if !ok {
            measured
                .tally
                .record_error(request.kind, MALFORMED_REPLY.to_owned());
        } else {
            measured.tally.record_ok(request.kind, latency);
        }
    }
}

/// Drives load through one connection until the window closes, `stop`, or the
/// connection fails; requests left without a reply count as in doubt. Gives the
/// session back when it is still usable.
async fn drive_connection(
    session: Session,
    chooser: &mut Chooser<'_>,
    in_flight: usize,
    measured: &mut Measured<'_>,
    stop: &CancellationToken,
) -> Result<Session, SessionError> {
    let session_id = session.session_id();
    let Session {
        mut reader,
        mut writer,
        ..
    } = session;
    let permits = Semaphore::new(in_flight.max(1));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    let broken = Broken::default();
    let until = measured.window.until;
    let (sent, received) = tokio::join!(
        async {
            let result = send_loop(
                &mut writer,
                chooser,
                &permits,
                &sent_tx,
                until,
                stop,
                &broken,
            )
            .await;
            if result.is_err() {
                broken.0.cancel();
            }
            // Closing the channel lets the receiver finish once every reply is in.
            drop(sent_tx);
            result
        },
        async {
            let result = receive_loop(&mut reader, &permits, &mut sent_rx, measured, &broken).await;
            if result.is_err() {
                broken.0.cancel();
                // Wakes the sender if it waits for a permit.
                permits.close();
            }
            result
        },
    );
    while let Ok(request) = sent_rx.try_recv() {
        measured.in_doubt(&request);
    }
    received?;
    sent?;
    Ok(Session::from_parts(reader, writer, session_id))
}

/// Drives load from one session for `window`, reconnecting through `rotation` when
/// its connection fails; see the module contract.
pub async fn drive(
    session: Session,
    index: usize,
    workload: Arc<Workload>,
    in_flight: usize,
    window: Window,
    stop: CancellationToken,
    mut rotation: Rotation,
) -> SessionOutcome {
    let mut chooser = Chooser {
        workload: &workload,
        rng: StdRng::from_rng(&mut rand::rng()),
        session: index,
        next_name: 0,
        created: VecDeque::new(),
    };
    let mut tally = Tally::default();
    let mut completions = Completions::default();
    let mut measured = Measured {
        tally: &mut tally,
        completions: &mut completions,
        window,
    };
    let mut reconnects = 0;
    let mut session = session;
    loop {
        match drive_connection(session, &mut chooser, in_flight, &mut measured, &stop).await {
            Ok(done) => {
                if let Err(e) = done.close().await {
                    tracing::debug!(error = %e, "closing a bench session failed");
                }
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, session = index, "bench session lost its server");
                let Some(next) =
                    reconnect(&mut rotation, SESSION_TIMEOUT, window.until, &stop).await
                else {
                    break;
                };
                session = next;
                reconnects += 1;
            }
        }
    }
    SessionOutcome {
        tally,
        completions,
        reconnects,
        created: chooser.created.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::protocol::{
        encode_connect_response, encode_reply, ConnectResponse, OpCode, ReplyHeader, Stat,
    };

    async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut body = vec![0; usize::try_from(u32::from_be_bytes(len)).ok()?];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    /// A stand-in server for one session: answers every request as `exists` is
    /// answered; with `dies`, it stops answering after the first duration and, after
    /// the second, drops the connection and stops listening, like a killed process.
    async fn fake_server(listener: TcpListener, dies: Option<(Duration, Duration)>) {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let started = Instant::now();
        read_frame(&mut stream).await.expect("handshake");
        let accepted = encode_connect_response(&ConnectResponse {
            protocol_version: 0,
            time_out: 30_000,
            session_id: 1,
            passwd: vec![0; 16],
            read_only: Some(false),
        });
        stream.write_all(&accepted).await.expect("handshake reply");
        while let Some(frame) = read_frame(&mut stream).await {
            if let Some((answering, silent)) = dies {
                if started.elapsed() >= answering {
                    tokio::time::sleep(silent).await;
                    return;
                }
            }
            let xid = i32::from_be_bytes(frame[0..4].try_into().expect("xid"));
            let op = i32::from_be_bytes(frame[4..8].try_into().expect("op"));
            let body = if op == OpCode::CloseSession.code() {
                Response::Empty
            } else {
                Response::Stat(Stat::default())
            };
            let header = ReplyHeader {
                xid,
                zxid: 1,
                err: 0,
            };
            if stream
                .write_all(&encode_reply(&header, &body))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_whose_server_dies_moves_on_and_counts_its_requests_in_doubt() {
        let dying = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let healthy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addrs: Arc<[String]> = [&dying, &healthy]
            .iter()
            .map(|l| l.local_addr().expect("addr").to_string())
            .collect();
        let answering = Duration::from_millis(300);
        let silent = Duration::from_millis(200);
        tokio::spawn(fake_server(dying, Some((answering, silent))));
        tokio::spawn(fake_server(healthy, None));

        let workload = Arc::new(Workload {
            root: "/r".into(),
            keys: vec!["/r/k0".into()],
            value: Vec::new(),
            mix: "exists=1".parse().expect("mix"),
        });
        let session = Session::connect(&addrs[0], SESSION_TIMEOUT)
            .await
            .expect("connect");
        let start = Instant::now();
        let length = Duration::from_millis(1000);
        let window = Window {
            measure_from: start,
            until: start + length,
        };
        let in_flight = 4;
        let outcome = drive(
            session,
            0,
            workload,
            in_flight,
            window,
            CancellationToken::new(),
            Rotation::starting_at(Arc::clone(&addrs), 1),
        )
        .await;

        assert_eq!(outcome.reconnects, 1);
        let exists = outcome.tally.kind(OpKind::Exists).expect("exists tallied");
        // Every request outstanding when the server went silent is in doubt.
        assert_eq!(
            exists.errors,
            [("ConnectionLoss".to_owned(), in_flight as u64)].into()
        );
        assert!(!exists.latencies.is_empty());
        let gap = outcome.completions.longest_gap(length);
        assert!(gap >= silent && gap < answering + silent, "{gap:?}");
    }
}
