//! openraft's network (`RaftNetworkFactory` / `RaftNetworkV2`) over the peer
//! transport: each Raft RPC is one request on the connection to the target.
//!
//! Appends are pipelined: openraft hands replication (and each heartbeat) over as a
//! stream of appends, and [`RaftPeer`] sends each as soon as openraft produces it,
//! up to [`STREAM_IN_FLIGHT`] unanswered, rather than waiting for the answer to the
//! one before (openraft's default). The target feeds them to its Raft core in order
//! (see `transport`), so a follower writes appends that arrive while it flushes in
//! one group commit, and the leader's next batch no longer waits a round trip and a
//! follower's fsync. Answers are yielded in order; the first failure ends the stream.
//! An append's time limit runs from when it was sent, but never ends before that of
//! the append ahead of it, whose answer comes first. Heartbeats join the same ordered
//! stream on the follower, so under a burst a heartbeat's answer waits for the appends
//! ahead of it; their own answers keep the leader's lease meanwhile. A stream takes
//! its first append from openraft before it connects, so that openraft's backoff (a
//! pause before the next append) paces the retries of a peer that is unreachable.
//!
//! A commit notice (an append without entries, which only carries a new commit index)
//! is held back for up to [`HOLD`]. If openraft produces another append meanwhile that
//! follows on the same log id in the same term, the notice is dropped: that append
//! carries the commit index too, and its answer acknowledges everything the notice's
//! would have. Under serial writes the next write's append comes a fraction of a
//! millisecond after the commit, so each write costs a follower one append and one
//! answer instead of two of each. A notice is sent at once when the target waits for
//! it ([`Peer::want_commit`]: the leader answered a write it forwarded, or a read
//! index, and the target must apply up to there to answer its client). Otherwise a
//! follower learns of a commit at most [`HOLD`] late, which only delays what its own
//! clients may see of other members' writes; ZooKeeper promises them no more than
//! an order, and `sync` asks for a read index.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::transport::{CallError, Connection, Peer, Peers, Request, Response};
use super::types::{Snapshot, Vote, C};
use super::MemberId;

/// Makes one [`RaftPeer`] per replication target.
pub(crate) struct Network {
    pub(crate) peers: Arc<Peers>,
}

impl RaftNetworkFactory<C> for Network {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            peer: self.peers.get(target, &node.addr),
            hold: HOLD,
        }
    }
}

pub(crate) struct RaftPeer {
    peer: Arc<Peer>,
    /// How long a commit notice is held back ([`HOLD`]; tests choose their own).
    hold: Duration,
}

/// The least time an append that carries entries is given. openraft allows every append one
/// heartbeat interval, right for a heartbeat but not for a batch of large entries that the
/// follower must also write to disk: a batch that cannot make it in time is sent again whole,
/// times out again, and never commits. A follower that is gone still fails fast (its
/// connection closes), and heartbeats keep their own short limit.
pub(crate) const APPEND_WITH_ENTRIES_TIMEOUT: Duration = Duration::from_secs(5);

/// The time limit of an append: `ttl` for a heartbeat, at least
/// [`APPEND_WITH_ENTRIES_TIMEOUT`] when it carries entries.
fn append_timeout(entries: usize, ttl: Duration) -> Duration {
    if entries == 0 {
        ttl
    } else {
        ttl.max(APPEND_WITH_ENTRIES_TIMEOUT)
    }
}

fn rpc_error(e: CallError) -> RPCError<C> {
    match e {
        CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected(response: Response) -> RPCError<C> {
    let what = match response {
        Response::Failed(e) => format!("refused: {e:?}"),
        _ => "an answer of the wrong kind".to_string(),
    };
    RPCError::Network(NetworkError::from_string(what))
}

impl RaftPeer {
    /// A vote or pre-vote request; both are answered with `Response::Vote`.
    async fn ask_for_vote(
        &self,
        request: Request,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self
            .peer
            .call(request, option.hard_ttl())
            .await
            .map_err(rpc_error)?
        {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

impl RaftNetworkV2<C> for RaftPeer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let timeout = append_timeout(rpc.entries.len(), option.hard_ttl());
        match self
            .peer
            .call(Request::Append(rpc), timeout)
            .await
            .map_err(rpc_error)?
        {
            Response::Append(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>, RPCError<C>>>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
    {
        let peer = self.peer.clone();
        let hold = self.hold;
        Box::pin(async move {
            // The first append before the connection: openraft's backoff after a
            // failure is a pause before it produces the next append, so failing on an
            // unreachable peer before asking for one would retry it in a busy loop.
            let mut input = input;
            let Some(first) = input.next().await else {
                return Ok(futures_util::stream::empty().boxed());
            };
            let connection = peer.connection().await.map_err(rpc_error)?;
            let pipeline = Pipeline {
                connection,
                peer,
                input: Some(futures_util::stream::iter([first]).chain(input)),
                in_flight: VecDeque::new(),
                ttl: option.hard_ttl(),
                ended: false,
                hold,
                held: None,
                sent_commit: 0,
            };
            let answers = futures_util::stream::unfold(pipeline, |mut pipeline| async move {
                let answer = pipeline.next().await?;
                Some((answer, pipeline))
            });
            Ok(answers.boxed())
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.ask_for_vote(Request::Vote(rpc), option).await
    }

    /// An unreachable target fails the pre-vote (openraft counts only answers), so an
    /// isolated member never gathers the quorum that would let it raise its term.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.ask_for_vote(Request::PreVote(rpc), option).await
    }

    /// Sends the snapshot in chunks, each a request of its own and answered before
    /// the next (see `transfer`); the last one's answer is the receiver's.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let chunk = option
            .snapshot_chunk_size()
            .unwrap_or(super::transfer::DEFAULT_CHUNK)
            .max(1);
        let data = snapshot.snapshot;
        let total = data.len() as u64;
        let send = async {
            let mut offset = 0;
            loop {
                let end = (offset + chunk).min(data.len());
                let request = Request::SnapshotChunk {
                    vote,
                    meta: snapshot.meta.clone(),
                    total,
                    offset: offset as u64,
                    data: data[offset..end].to_vec(),
                };
                match self
                    .peer
                    .call(request, option.hard_ttl())
                    .await
                    .map_err(rpc_error)?
                {
                    Response::Snapshot(r) => return Ok(r),
                    Response::Done if end < data.len() => offset = end,
                    other => return Err(unexpected(other).into()),
                }
            }
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = send => response,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        match self
            .peer
            .call(Request::TransferLeader(req), option.hard_ttl())
            .await
            .map_err(rpc_error)?
        {
            Response::TransferLeader(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

/// Appends one stream keeps unanswered at most (the target's Raft buffers as many).
pub(crate) const STREAM_IN_FLIGHT: usize = 64;

/// How long a commit notice waits at most for the append that makes it unneeded; see
/// the module contract.
pub(crate) const HOLD: Duration = Duration::from_millis(1);

/// One stream of appends on one connection; see the module contract.
struct Pipeline<S> {
    connection: Arc<Connection>,
    peer: Arc<Peer>,
    /// `None` once openraft ended its stream.
    input: Option<S>,
    in_flight: VecDeque<(oneshot::Receiver<Response>, Instant)>,
    ttl: Duration,
    ended: bool,
    /// How long a commit notice is held back at most.
    hold: Duration,
    /// The commit notice held back, and when it must go.
    held: Option<(AppendEntriesRequest<C>, Instant)>,
    /// The greatest commit index sent on this stream.
    sent_commit: u64,
}

impl<S> Pipeline<S>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    /// The answer to the oldest unanswered append, sending every append openraft
    /// produces meanwhile; `None` once the input ended and all are answered, or after
    /// a failure.
    async fn next(&mut self) -> Option<Result<StreamAppendResult<C>, RPCError<C>>> {
        if self.ended {
            return None;
        }
        loop {
            if self.input.is_none() && self.in_flight.is_empty() {
                return None;
            }
            let room = self.input.is_some() && self.in_flight.len() < STREAM_IN_FLIGHT;
            let release = self.held.as_ref().map(|(_, until)| *until);
            let sent = tokio::select! {
                biased;
                answer = oldest_answer(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    self.in_flight.pop_front();
                    let peer = self.connection.peer();
                    let answer = match answer {
                        Some(Ok(Response::StreamAppend(result))) => Ok(result),
                        Some(Ok(other)) => Err(unexpected(other)),
                        Some(Err(_)) => Err(rpc_error(CallError::Lost(peer))),
                        None => Err(rpc_error(CallError::Timeout(peer))),
                    };
                    self.ended = !matches!(answer, Ok(Ok(_)));
                    return Some(answer);
                }
                _ = self.peer.commit_wanted(), if release.is_some() => {
                    if self.peer.wanted_commit() > self.sent_commit {
                        self.release_held()
                    } else {
                        Ok(())
                    }
                }
                _ = sleep_until(release), if release.is_some() => self.release_held(),
                request = next_request(&mut self.input), if room => match request {
                    None => {
                        self.input = None;
                        self.release_held()
                    }
                    Some(rpc) => self.offer(rpc),
                },
            };
            if let Err(e) = sent {
                self.ended = true;
                return Some(Err(e));
            }
        }
    }

    /// Sends `rpc`, or holds it back if it is a commit notice (see the module contract).
    fn offer(&mut self, rpc: AppendEntriesRequest<C>) -> Result<(), RPCError<C>> {
        if let Some((held, until)) = self.held.take() {
            if held.prev_log_id != rpc.prev_log_id || held.vote != rpc.vote {
                self.send(held)?;
            } else if rpc.entries.is_empty() {
                // A newer notice in its place, due when the first was.
                self.held = Some((rpc, until));
                return Ok(());
            }
        }
        if rpc.entries.is_empty() && self.peer.wanted_commit() <= self.sent_commit {
            self.held = Some((rpc, Instant::now() + self.hold));
            return Ok(());
        }
        self.send(rpc)
    }

    fn release_held(&mut self) -> Result<(), RPCError<C>> {
        match self.held.take() {
            Some((rpc, _)) => self.send(rpc),
            None => Ok(()),
        }
    }

    fn send(&mut self, rpc: AppendEntriesRequest<C>) -> Result<(), RPCError<C>> {
        let commit = rpc.leader_commit.as_ref().map_or(0, |c| c.index);
        // Answers come in order: none is due before the one ahead of it.
        let own = Instant::now() + append_timeout(rpc.entries.len(), self.ttl);
        let deadline = self
            .in_flight
            .back()
            .map_or(own, |(_, ahead)| own.max(*ahead));
        let answer = self
            .connection
            .send(Request::StreamAppend(rpc))
            .map_err(rpc_error)?;
        self.in_flight.push_back((answer, deadline));
        self.sent_commit = self.sent_commit.max(commit);
        Ok(())
    }
}

/// Sleeps until `at`, or forever if it is `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The oldest append's answer (`Err` if its connection died), or `None` when its
/// deadline passed first.
async fn oldest_answer(
    in_flight: &mut VecDeque<(oneshot::Receiver<Response>, Instant)>,
) -> Option<Result<Response, oneshot::error::RecvError>> {
    let (answer, deadline) = in_flight.front_mut().expect("an append in flight");
    tokio::time::timeout_at(*deadline, answer).await.ok()
}

async fn next_request<S>(input: &mut Option<S>) -> Option<AppendEntriesRequest<C>>
where
    S: Stream<Item = AppendEntriesRequest<C>> + Unpin,
{
    input.as_mut()?.next().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::transport::{self, Service, WireError};
    use futures_util::future::BoxFuture;
    use openraft::raft::StreamAppendError;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    type Index = u64;

    /// A member that answers streamed appends only once `hold` of them have arrived,
    /// each with its `leader_commit`, and refuses the one whose commit is `refuse`.
    /// `seen` records each append as it arrives: its number of entries and commit.
    #[derive(Default)]
    struct Holding {
        hold: usize,
        refuse: Option<Index>,
        seen: Seen,
    }

    type Seen = Arc<std::sync::Mutex<Vec<(usize, Index)>>>;

    impl Service for Holding {
        fn propose(
            self: Arc<Self>,
            _: MemberId,
            _: Vec<u8>,
        ) -> BoxFuture<'static, BoxFuture<'static, Response>> {
            let refused: BoxFuture<'static, Response> =
                Box::pin(async { Response::Failed(WireError::NotLeader) });
            Box::pin(futures_util::future::ready(refused))
        }

        fn append_stream(
            self: Arc<Self>,
            appends: futures_util::stream::BoxStream<'static, AppendEntriesRequest<C>>,
        ) -> futures_util::stream::BoxStream<'static, Response> {
            let refuse = self.refuse;
            let seen = self.seen.clone();
            appends
                .inspect(move |rpc| {
                    let commit = rpc.leader_commit.expect("the test sets it").index;
                    seen.lock().unwrap().push((rpc.entries.len(), commit));
                })
                .chunks(self.hold)
                .flat_map(move |held| {
                    futures_util::stream::iter(held.into_iter().map(move |rpc| {
                        let commit = rpc.leader_commit.expect("the test sets it");
                        Response::StreamAppend(if Some(commit.index) == refuse {
                            Err(StreamAppendError::Conflict(commit))
                        } else {
                            Ok(Some(commit))
                        })
                    }))
                })
                .boxed()
        }

        fn handle(self: Arc<Self>, _: MemberId, _: Request) -> BoxFuture<'static, Response> {
            Box::pin(async { Response::Failed(WireError::NotLeader) })
        }

        fn peer_closed(self: Arc<Self>, _: MemberId) {}
    }

    async fn serving(service: Holding) -> (RaftPeer, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        tokio::spawn(transport::serve(
            2,
            listener,
            Arc::new(service),
            None,
            stop.clone(),
        ));
        let peer = Peers::new(1, None).get(2, &address);
        (RaftPeer { peer, hold: HOLD }, stop)
    }

    /// An append that follows on index `prev` with `entries` blank entries (a commit
    /// notice with none) and carries commit index `commit`.
    fn append(prev: Index, entries: Index, commit: Index) -> AppendEntriesRequest<C> {
        let log_id = |index| openraft::testing::log_id::<C>(1, 1, index);
        AppendEntriesRequest {
            vote: super::super::types::Vote::new(1, 1),
            prev_log_id: (prev > 0).then(|| log_id(prev)),
            leader_commit: Some(log_id(commit)),
            entries: (prev + 1..=prev + entries)
                .map(|index| super::super::types::Entry {
                    log_id: log_id(index),
                    payload: openraft::EntryPayload::Blank,
                })
                .collect(),
        }
    }

    /// One append of one entry per commit index, entry `i` carrying commit `i`.
    fn appends(commits: std::ops::RangeInclusive<Index>) -> Vec<AppendEntriesRequest<C>> {
        commits.map(|index| append(index - 1, 1, index)).collect()
    }

    /// The answers to a stream of `input`.
    async fn open<S>(
        peer: &mut RaftPeer,
        input: S,
    ) -> BoxStream<'_, Result<StreamAppendResult<C>, RPCError<C>>>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + Send + Unpin + 'static,
    {
        let option = RPCOption::new(Duration::from_secs(2));
        peer.stream_append(input, option)
            .await
            .expect("stream opens")
    }

    /// The commits the stream acknowledged, in order, up to its first failure.
    async fn send(
        peer: &mut RaftPeer,
        commits: std::ops::RangeInclusive<Index>,
    ) -> Vec<Result<Index, String>> {
        open(peer, futures_util::stream::iter(appends(commits)))
            .await
            .map(|answer| match answer {
                Ok(Ok(acked)) => Ok(acked.expect("acknowledged").index),
                Ok(Err(refused)) => Err(refused.to_string()),
                Err(failed) => Err(failed.to_string()),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn appends_go_out_before_the_earlier_ones_are_answered() {
        // Sent one at a time, the first would wait for its answer until the time
        // limit, since the member answers none until it holds all eight.
        let (mut peer, stop) = serving(Holding {
            hold: 8,
            ..Holding::default()
        })
        .await;
        assert_eq!(
            send(&mut peer, 1..=8).await,
            (1..=8).map(Ok).collect::<Vec<_>>()
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_refused_append_ends_its_stream_and_the_next_stream_starts_afresh() {
        let (mut peer, stop) = serving(Holding {
            hold: 1,
            refuse: Some(3),
            ..Holding::default()
        })
        .await;
        let answers = send(&mut peer, 1..=5).await;
        assert_eq!(answers[..2], [Ok(1), Ok(2)]);
        assert!(
            answers[2].as_ref().is_err_and(|e| e.contains("onflict")),
            "{answers:?}"
        );
        assert_eq!(answers.len(), 3, "nothing after the refusal: {answers:?}");
        assert_eq!(send(&mut peer, 6..=7).await, [Ok(6), Ok(7)]);
        stop.cancel();
    }

    #[tokio::test]
    async fn an_unreachable_peer_fails_a_stream_only_once_openraft_offers_an_append() {
        // openraft's backoff delays the stream's first append: a stream that failed
        // before taking one would be retried at once, in a busy loop.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = gone.local_addr().unwrap().to_string();
        drop(gone);
        let mut peer = RaftPeer {
            peer: Peers::new(1, None).get(2, &address),
            hold: HOLD,
        };
        let option = RPCOption::new(Duration::from_secs(2));
        let waiting = peer.stream_append(futures_util::stream::pending(), option.clone());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), waiting)
                .await
                .is_err(),
            "the stream failed before openraft offered an append"
        );
        let input = futures_util::stream::iter(appends(1..=1));
        let failed = match peer.stream_append(input, option).await {
            Err(e) => Some(e),
            Ok(answers) => {
                answers
                    .filter_map(|a| async { a.err() })
                    .boxed()
                    .next()
                    .await
            }
        };
        assert!(failed.is_some(), "an append reached a peer that is gone");
    }

    #[test]
    fn only_appends_with_entries_get_the_longer_limit() {
        let heartbeat = Duration::from_millis(50);
        assert_eq!(append_timeout(0, heartbeat), heartbeat);
        assert_eq!(append_timeout(1, heartbeat), APPEND_WITH_ENTRIES_TIMEOUT);
        let long = APPEND_WITH_ENTRIES_TIMEOUT * 2;
        assert_eq!(append_timeout(3, long), long);
    }

    /// Opens a stream of `appends` (then of nothing, never ending) with commit notices
    /// held for `hold`; yields the commits acknowledged.
    async fn stream(
        peer: &mut RaftPeer,
        hold: Duration,
        appends: Vec<AppendEntriesRequest<C>>,
    ) -> BoxStream<'_, Index> {
        peer.hold = hold;
        let input = futures_util::stream::iter(appends).chain(futures_util::stream::pending());
        open(peer, input)
            .await
            .map(|answer| {
                answer
                    .expect("answered")
                    .expect("acknowledged")
                    .unwrap()
                    .index
            })
            .boxed()
    }

    /// A member that answers each append as it arrives, and what it has seen.
    async fn answering_each() -> (RaftPeer, CancellationToken, Seen) {
        let service = Holding {
            hold: 1,
            ..Holding::default()
        };
        let seen = service.seen.clone();
        let (peer, stop) = serving(service).await;
        (peer, stop, seen)
    }

    /// Long enough that a notice that arrives was not let go by its hold running out.
    const FOREVER: Duration = Duration::from_secs(600);

    async fn next(answers: &mut BoxStream<'_, Index>) -> Index {
        tokio::time::timeout(Duration::from_secs(10), answers.next())
            .await
            .expect("answered in time")
            .expect("stream open")
    }

    #[tokio::test]
    async fn a_commit_notice_gives_way_to_the_next_append_on_the_same_log_id() {
        let (mut peer, stop, seen) = answering_each().await;
        // Entry 1, then the notice that it is committed, then entry 2 (which carries
        // that commit): the member sees no notice.
        let sent = vec![append(0, 1, 0), append(1, 0, 1), append(1, 1, 1)];
        let mut answers = stream(&mut peer, FOREVER, sent).await;
        assert_eq!(next(&mut answers).await, 0);
        assert_eq!(next(&mut answers).await, 1);
        assert_eq!(*seen.lock().unwrap(), [(1, 0), (1, 1)]);
        drop(answers);
        // A notice on another log id than the append after it goes out first.
        seen.lock().unwrap().clear();
        let sent = vec![append(2, 0, 2), append(5, 1, 2)];
        let mut answers = stream(&mut peer, FOREVER, sent).await;
        assert_eq!(next(&mut answers).await, 2);
        assert_eq!(next(&mut answers).await, 2);
        assert_eq!(*seen.lock().unwrap(), [(0, 2), (1, 2)]);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_commit_notice_nothing_follows_goes_out_when_its_hold_ends() {
        let (mut peer, stop, seen) = answering_each().await;
        let hold = Duration::from_millis(200);
        let started = Instant::now();
        let mut answers = stream(&mut peer, hold, vec![append(0, 1, 0), append(1, 0, 1)]).await;
        assert_eq!(next(&mut answers).await, 0);
        assert_eq!(next(&mut answers).await, 1);
        assert!(started.elapsed() >= hold, "sent before its hold ended");
        assert_eq!(*seen.lock().unwrap(), [(1, 0), (0, 1)]);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_commit_notice_goes_out_at_once_to_a_member_that_waits_for_it() {
        let (mut peer, stop, seen) = answering_each().await;
        let waits = peer.peer.clone();
        // Asked for while the notice is held.
        let mut answers = stream(&mut peer, FOREVER, vec![append(0, 1, 0), append(1, 0, 1)]).await;
        assert_eq!(next(&mut answers).await, 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.lock().unwrap().len(), 1, "the notice was not held");
        waits.want_commit(1);
        assert_eq!(next(&mut answers).await, 1);
        drop(answers);
        // Asked for before the notice exists: it is never held.
        waits.want_commit(3);
        let mut answers = stream(&mut peer, FOREVER, vec![append(2, 1, 2), append(3, 0, 3)]).await;
        assert_eq!(next(&mut answers).await, 2);
        assert_eq!(next(&mut answers).await, 3);
        // Asking again for a commit it was sent does not release the next notice.
        waits.want_commit(3);
        drop(answers);
        let mut answers = stream(&mut peer, FOREVER, vec![append(4, 0, 3), append(4, 0, 4)]).await;
        assert_eq!(next(&mut answers).await, 3);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            seen.lock().unwrap().last(),
            Some(&(0, 3)),
            "the notice was not held"
        );
        stop.cancel();
    }
}
