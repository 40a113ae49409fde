//! Property tests of the jute codec: encode∘decode is the identity for every request,
//! response and handshake record, and no byte string makes a decoder panic.

use ensemble_server::protocol::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[/a-z0-9é.]{0,12}"
}

fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::of(vec(any::<u8>(), 0..24))
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

fn id() -> impl Strategy<Value = Id> {
    (text(), text()).prop_map(|(scheme, id)| Id { scheme, id })
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(
        (any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id }),
        0..3,
    )
}

prop_compose! {
    fn stat()(a in any::<i64>(), b in any::<i64>(), c in any::<i64>(), d in any::<i64>(),
              e in any::<i32>(), f in any::<i32>(), g in any::<i32>(), h in any::<i64>(),
              i in any::<i32>(), j in any::<i32>(), k in any::<i64>()) -> Stat {
        Stat { czxid: a, mzxid: b, ctime: c, mtime: d, version: e, cversion: f, aversion: g,
               ephemeral_owner: h, data_length: i, num_children: j, pzxid: k }
    }
}

prop_compose! {
    fn create_req()(path in text(), data in data(), acl in acls(), flags in any::<i32>())
        -> CreateRequest { CreateRequest { path, data, acl, flags } }
}

prop_compose! {
    fn create_ttl_req()(path in text(), data in data(), acl in acls(), flags in any::<i32>(),
                        ttl in any::<i64>()) -> CreateTtlRequest {
        CreateTtlRequest { path, data, acl, flags, ttl }
    }
}

fn write_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (
            prop_oneof![
                Just(OpCode::Create),
                Just(OpCode::Create2),
                Just(OpCode::CreateContainer)
            ],
            create_req()
        )
            .prop_map(|(op, req)| MultiOp::Create { op, req }),
        create_ttl_req().prop_map(MultiOp::CreateTtl),
        (text(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (text(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn read_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (text(), any::<bool>())
            .prop_map(|(path, watch)| MultiOp::GetChildren(GetChildrenRequest { path, watch })),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| MultiOp::GetData(GetDataRequest { path, watch })),
    ]
}

fn set_watches2() -> impl Strategy<Value = SetWatches2> {
    (
        any::<i64>(),
        strings(),
        strings(),
        strings(),
        strings(),
        strings(),
    )
        .prop_map(|(relative_zxid, d, e, c, p, r)| SetWatches2 {
            relative_zxid,
            data_watches: d,
            exist_watches: e,
            child_watches: c,
            persistent_watches: p,
            persistent_recursive_watches: r,
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_req().prop_map(Request::Create),
        create_req().prop_map(Request::Create2),
        create_req().prop_map(Request::CreateContainer),
        create_ttl_req().prop_map(Request::CreateTtl),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetData(GetDataRequest { path, watch })),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        text().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
        (text(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren(GetChildrenRequest { path, watch })),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request { path, watch })),
        text().prop_map(|path| Request::Sync(SyncRequest { path })),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        vec(write_op(), 0..4).prop_map(Request::Multi),
        vec(read_op(), 0..4).prop_map(Request::MultiRead),
        (
            option::of(text()),
            option::of(text()),
            option::of(text()),
            any::<i64>()
        )
            .prop_map(|(j, l, n, c)| Request::Reconfig(ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: n,
                cur_config_id: c
            })),
        (text(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches(
            CheckWatchesRequest { path, watcher_type }
        )),
        (text(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches(
            RemoveWatchesRequest { path, watcher_type }
        )),
        (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| {
            Request::SetWatches(SetWatches {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
            })
        }),
        set_watches2().prop_map(Request::SetWatches2),
        (text(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        text().prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest { prefix_path })),
        text().prop_map(|path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })),
        Just(Request::WhoAmI),
        (any::<i32>(), text(), vec(any::<u8>(), 0..16)).prop_map(|(auth_type, scheme, auth)| {
            Request::Auth(AuthPacket {
                auth_type,
                scheme,
                auth: Bytes(auth),
            })
        }),
        Just(Request::Ping),
        Just(Request::CloseSession),
    ]
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        text().prop_map(MultiResult::Create),
        (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        stat().prop_map(MultiResult::SetData),
        Just(MultiResult::Check),
        strings().prop_map(MultiResult::GetChildren),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        any::<i32>().prop_map(MultiResult::Error),
    ]
}

/// A response and the opcode of a request it answers.
fn response() -> impl Strategy<Value = (OpCode, Response)> {
    prop_oneof![
        Just((OpCode::Delete, Response::Empty)),
        text().prop_map(|path| (OpCode::Create, Response::Create(CreateResponse { path }))),
        (text(), stat()).prop_map(|(path, stat)| (
            OpCode::Create2,
            Response::Create2(Create2Response { path, stat })
        )),
        stat().prop_map(|s| (OpCode::Exists, Response::Stat(s))),
        (data(), stat()).prop_map(|(data, stat)| (
            OpCode::GetData,
            Response::GetData(GetDataResponse { data, stat })
        )),
        (acls(), stat()).prop_map(|(acl, stat)| (
            OpCode::GetAcl,
            Response::GetAcl(GetAclResponse { acl, stat })
        )),
        strings().prop_map(|children| (
            OpCode::GetChildren,
            Response::GetChildren(GetChildrenResponse { children })
        )),
        (strings(), stat()).prop_map(|(children, stat)| (
            OpCode::GetChildren2,
            Response::GetChildren2(GetChildren2Response { children, stat })
        )),
        text().prop_map(|path| (OpCode::Sync, Response::Sync(SyncResponse { path }))),
        vec(multi_result(), 0..5).prop_map(|r| (OpCode::Multi, Response::Multi(r))),
        any::<i32>().prop_map(|err| (OpCode::AddWatch, Response::AddWatch(ErrorResponse { err }))),
        strings().prop_map(|ephemerals| (
            OpCode::GetEphemerals,
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
        )),
        any::<i32>().prop_map(|total_number| (
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
        )),
        vec((text(), text()), 0..3).prop_map(|infos| (
            OpCode::WhoAmI,
            Response::WhoAmI(WhoAmIResponse {
                client_info: infos
                    .into_iter()
                    .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                    .collect()
            })
        )),
        (any::<i32>(), any::<i32>(), text()).prop_map(|(event_type, state, path)| (
            OpCode::Notification,
            Response::Event(WatcherEvent {
                event_type,
                state,
                path
            })
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trip(req in request(), xid in any::<i32>()) {
        let frame = req.encode_frame(xid);
        let (status, body) = FrameCodec::default().split(&frame);
        prop_assert_eq!(status.frame_len(), Some(frame.len()));
        let (header, decoded) = Request::decode(body.unwrap_or_default()).expect("decodes");
        prop_assert_eq!(header, RequestHeader { xid, op: req.op().code() });
        prop_assert_eq!(decoded, req);
    }

    #[test]
    fn response_round_trip((op, rsp) in response(), xid in any::<i32>(), zxid in any::<i64>()) {
        let header = ReplyHeader { xid, zxid, err: 0 };
        let frame = encode_reply(&header, &rsp);
        let body = &frame[frame::LENGTH_PREFIX..];
        let (decoded_header, rest) = response::decode_reply_header(body).expect("header");
        prop_assert_eq!(decoded_header, header);
        prop_assert_eq!(Response::decode_body(op, rest).expect("body"), rsp);
    }

    #[test]
    fn handshake_round_trip(
        pv in any::<i32>(), zxid in any::<i64>(), to in any::<i32>(), sid in any::<i64>(),
        passwd in vec(any::<u8>(), 0..20), ro in option::of(any::<bool>()),
    ) {
        let req = ConnectRequest {
            protocol_version: pv, last_zxid_seen: zxid, time_out: to, session_id: sid,
            passwd: passwd.clone(), read_only: ro,
        };
        prop_assert_eq!(ConnectRequest::from_bytes(&req.to_bytes()), Ok(req));
        let rsp = ConnectResponse {
            protocol_version: pv, time_out: to, session_id: sid, passwd, read_only: ro,
        };
        let frame = encode_connect_response(&rsp);
        prop_assert_eq!(ConnectResponse::from_bytes(&frame[4..]), Ok(rsp));
    }

    #[test]
    fn small_records_round_trip(
        a in any::<i32>(), b in any::<bool>(), c in any::<i32>(), scheme in text(),
        auth in vec(any::<u8>(), 0..8), s in stat(),
    ) {
        let mh = MultiHeader { op: a, done: b, err: c };
        prop_assert_eq!(MultiHeader::from_bytes(&mh.to_bytes()), Ok(mh));
        let ap = AuthPacket { auth_type: a, scheme, auth: Bytes(auth) };
        prop_assert_eq!(AuthPacket::from_bytes(&ap.to_bytes()), Ok(ap));
        prop_assert_eq!(Stat::from_bytes(&s.to_bytes()), Ok(s));
        let sd = SetDataResponse { stat: s };
        prop_assert_eq!(SetDataResponse::from_bytes(&sd.to_bytes()), Ok(sd));
        let sa = SetAclResponse { stat: s };
        prop_assert_eq!(SetAclResponse::from_bytes(&sa.to_bytes()), Ok(sa));
        let ex = ExistsResponse { stat: s };
        prop_assert_eq!(ExistsResponse::from_bytes(&ex.to_bytes()), Ok(ex));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        fuzz_decode(&bytes);
        let _ = ConnectResponse::from_bytes(&bytes);
        let _ = split_frame(&bytes, 64);
    }

    #[test]
    fn decoding_mutated_requests_never_panics(
        req in request(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = req.encode_frame(1);
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        fuzz_decode(&frame);
        let _ = Request::decode(&frame[4..]);
    }
}

#[test]
fn unknown_opcodes_are_errors() {
    for op in [10, 20, 23, 99, 102, 108, -10, i32::MIN] {
        let mut w = Writer::new();
        RequestHeader { xid: 1, op }.write(&mut w);
        assert_eq!(
            Request::decode(&w.into_bytes()),
            Err(DecodeError::UnknownOpCode(op)),
            "{op}"
        );
    }
}

#[test]
fn multi_mixing_reads_and_writes_is_rejected() {
    let mut w = Writer::new();
    Request::MultiRead(vec![
        MultiOp::GetData(GetDataRequest {
            path: "/a".into(),
            watch: false,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        }),
    ])
    .write_body(&mut w);
    assert_eq!(
        Request::decode_body(OpCode::MultiRead.code(), &w.into_bytes()),
        Err(DecodeError::MixedMulti)
    );
}

#[test]
fn multi_with_foreign_op_is_rejected() {
    let mut w = Writer::new();
    MultiHeader {
        op: OpCode::Sync.code(),
        done: false,
        err: -1,
    }
    .write(&mut w);
    w.write_ustring("/a");
    assert_eq!(
        Request::decode_body(OpCode::Multi.code(), &w.into_bytes()),
        Err(DecodeError::InvalidMultiOp(9))
    );
}
