//! openraft's network (`RaftNetworkFactory` / `RaftNetworkV2`) over the peer
//! transport: each Raft RPC is one request on the connection to the target.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};

use super::transport::{CallError, Peer, Peers, Request, Response};
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
        }
    }
}

pub(crate) struct RaftPeer {
    peer: Arc<Peer>,
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

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self
            .peer
            .call(Request::Vote(rpc), option.hard_ttl())
            .await
            .map_err(rpc_error)?
        {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let call = self.peer.call(request, option.hard_ttl());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = call => match response.map_err(rpc_error)? {
                Response::Snapshot(r) => Ok(r),
                other => Err(unexpected(other).into()),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_appends_with_entries_get_the_longer_limit() {
        let heartbeat = Duration::from_millis(50);
        assert_eq!(append_timeout(0, heartbeat), heartbeat);
        assert_eq!(append_timeout(1, heartbeat), APPEND_WITH_ENTRIES_TIMEOUT);
        let long = APPEND_WITH_ENTRIES_TIMEOUT * 2;
        assert_eq!(append_timeout(3, long), long);
    }
}
