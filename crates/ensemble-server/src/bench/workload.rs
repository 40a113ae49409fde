//! The three phases of a bench run against a server: set up a private root with the
//! key nodes, drive load from each session, tear everything down again.
//!
//! Contract: [`setup`] creates `root` and `keys` children `root/k<i>` holding the value.
//! [`drive`] keeps up to `in_flight` requests outstanding on one session until the
//! window closes (or `stop` is cancelled), then waits for the replies still due, and
//! tallies only requests sent inside the measured part of the window. Created nodes are
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

use super::mix::{Mix, OpKind};
use super::report::{error_name, Tally, MALFORMED_REPLY};
use super::session::{ReplyReader, RequestWriter, Session, SessionError, REPLY_TIMEOUT};
use super::StepFailure;
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

async fn send_loop(
    writer: &mut RequestWriter,
    chooser: &mut Chooser<'_>,
    permits: &Semaphore,
    sent: mpsc::UnboundedSender<Sent>,
    until: Instant,
    stop: &CancellationToken,
) -> Result<(), SessionError> {
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    let mut frames = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
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

async fn receive_loop(
    reader: &mut ReplyReader,
    permits: &Semaphore,
    mut sent: mpsc::UnboundedReceiver<Sent>,
    measure_from: Instant,
    tally: &mut Tally,
) -> Result<(), SessionError> {
    while let Some(request) = sent.recv().await {
        let (header, body) = reader.reply_to(request.xid, REPLY_TIMEOUT).await?;
        let latency = request.at.elapsed();
        permits.add_permits(1);
        if request.at < measure_from {
            continue;
        }
        if header.err != 0 {
            tally.record_error(request.kind, error_name(header.err));
        } else if Response::decode_body(request.kind.op_code(), &body).is_err() {
            tally.record_error(request.kind, MALFORMED_REPLY.to_owned());
        } else {
            tally.record_ok(request.kind, latency);
        }
    }
    Ok(())
}

/// Drives load through `session` for `window`; see the module contract.
pub async fn drive(
    session: Session,
    index: usize,
    workload: Arc<Workload>,
    in_flight: usize,
    window: Window,
    stop: CancellationToken,
) -> Result<SessionOutcome, SessionError> {
    let session_id = session.session_id();
    let Session {
        mut reader,
        mut writer,
        ..
    } = session;
    let permits = Semaphore::new(in_flight.max(1));
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let failed = stop.child_token();
    let mut chooser = Chooser {
        workload: &workload,
        rng: StdRng::from_rng(&mut rand::rng()),
        session: index,
        next_name: 0,
        created: VecDeque::new(),
    };
    let mut tally = Tally::default();
    let (sent, received) = tokio::join!(
        async {
            let result = send_loop(
                &mut writer,
                &mut chooser,
                &permits,
                sent_tx,
                window.until,
                &failed,
            )
            .await;
            if result.is_err() {
                failed.cancel();
            }
            result
        },
        async {
            let result = receive_loop(
                &mut reader,
                &permits,
                sent_rx,
                window.measure_from,
                &mut tally,
            )
            .await;
            if result.is_err() {
                failed.cancel();
                // Wakes the sender if it waits for a permit.
                permits.close();
            }
            result
        },
    );
    received?;
    sent?;
    let created = chooser.created.into_iter().collect();
    if let Err(e) = Session::from_parts(reader, writer, session_id)
        .close()
        .await
    {
        tracing::debug!(error = %e, "closing a bench session failed");
    }
    Ok(SessionOutcome { tally, created })
}
