//! The records of Apache ZooKeeper's `zookeeper.jute`, field for field and in wire order.
//!
//! Contract: each record's [`Record::read`]/[`Record::write`] follow the jute definition
//! exactly. Nullable buffers are `Option<Vec<u8>>` where ZooKeeper distinguishes null
//! from empty (znode data: a node created with null data returns a null buffer);
//! elsewhere null reads as empty. [`ConnectRequest`] and [`ConnectResponse`] carry
//! the trailing `readOnly` flag as an `Option`, because clients older than 3.4 omit it
//! and the server must answer them in kind (`compat.ProtocolManager`).

use super::jute::{DecodeError, Reader, Record, Writer};

/// A type that can be one field of a record.
pub trait Field: Sized {
    /// The fewest bytes one value occupies on the wire; bounds vector counts.
    const MIN_SIZE: usize = 1;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write_field(&self, w: &mut Writer);
}

impl Field for i32 {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_i32(*self)
    }
}

impl Field for i64 {
    const MIN_SIZE: usize = 8;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_i64(*self)
    }
}

impl Field for bool {
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_bool(*self)
    }
}

/// `ustring`; null reads as "".
impl Field for String {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_ustring()
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_ustring(self)
    }
}

/// Nullable `ustring`.
impl Field for Option<String> {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_ustring_opt()
    }
    fn write_field(&self, w: &mut Writer) {
        match self {
            Some(s) => w.write_ustring(s),
            None => w.write_buffer(None),
        }
    }
}

/// Nullable `buffer`.
impl Field for Option<Vec<u8>> {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_buffer()
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_buffer(self.as_deref())
    }
}

/// Non-null `buffer` (null reads as empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Field for Bytes {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bytes().map(Bytes)
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_bytes(&self.0)
    }
}

/// `vector<T>`; null reads as empty.
impl<T: Field> Field for Vec<T> {
    const MIN_SIZE: usize = 4;
    fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_vec(T::MIN_SIZE, T::read_field)
    }
    fn write_field(&self, w: &mut Writer) {
        w.write_vec(self, |w, v| v.write_field(w))
    }
}

macro_rules! record {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl Record for $name {
            #[allow(unused_variables)]
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(Self { $($field: <$ty as Field>::read_field(r)?,)* })
            }
            #[allow(unused_variables)]
            fn write(&self, w: &mut Writer) {
                $(self.$field.write_field(w);)*
            }
        }

        impl Field for $name {
            const MIN_SIZE: usize = 0 $(+ <$ty as Field>::MIN_SIZE)*;
            fn read_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                <Self as Record>::read(r)
            }
            fn write_field(&self, w: &mut Writer) {
                <Self as Record>::write(self, w)
            }
        }
    };
}

// ---- org.apache.zookeeper.data ----

record!(
    /// An identity: `scheme:id`, e.g. `world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`.
    #[derive(Hash, PartialOrd, Ord)]
    Id { scheme: String, id: String }
);

record!(
    /// A permission grant: `perms` bits (see `codes::perms`) for `id`.
    #[derive(Hash, PartialOrd, Ord)]
    Acl { perms: i32, id: Id }
);

record!(
    /// The node metadata clients see.
    #[derive(Copy, Hash)]
    Stat {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        pzxid: i64,
    }
);

record!(ClientInfo {
    auth_scheme: String,
    user: String
});

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// `world:anyone`.
    pub fn anyone() -> Self {
        Self::new("world", "anyone")
    }
}

impl Acl {
    pub fn new(perms: i32, id: Id) -> Self {
        Self { perms, id }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`: all permissions for everyone.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::codes::perms::ALL, Id::anyone())]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`: read for everyone.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(super::codes::perms::READ, Id::anyone())]
    }
}

// ---- org.apache.zookeeper.proto ----

/// The first packet of a connection (no request header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` when the client sent no trailing `readOnly` byte.
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_bytes()?,
            read_only: r.read_trailing_bool()?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.time_out);
        w.write_i64(self.session_id);
        w.write_bytes(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

/// The answer to a [`ConnectRequest`]; `read_only` is written only when the request
/// carried one. An expired or unknown session is answered with `time_out` 0,
/// `session_id` 0 and a zeroed 16-byte password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectResponse {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: r.read_i32()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_bytes()?,
            read_only: r.read_trailing_bool()?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.time_out);
        w.write_i64(self.session_id);
        w.write_bytes(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

record!(SetWatches {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
});

record!(SetWatches2 {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
    persistent_watches: Vec<String>,
    persistent_recursive_watches: Vec<String>,
});

record!(RequestHeader { xid: i32, op: i32 });
record!(
    /// Precedes each op of a multi request and each result of a multi response;
    /// `done` ends the list (written as type -1, done true, err -1).
    MultiHeader { op: i32, done: bool, err: i32 }
);
record!(AuthPacket {
    auth_type: i32,
    scheme: String,
    auth: Bytes,
});
record!(ReplyHeader {
    xid: i32,
    zxid: i64,
    err: i32,
});

record!(GetDataRequest {
    path: String,
    watch: bool
});
record!(SetDataRequest {
    path: String,
    data: Option<Vec<u8>>,
    version: i32,
});
record!(ReconfigRequest {
    joining_servers: Option<String>,
    leaving_servers: Option<String>,
    new_members: Option<String>,
    cur_config_id: i64,
});
record!(SetDataResponse { stat: Stat });
record!(CreateRequest {
    path: String,
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    flags: i32,
});
record!(CreateTtlRequest {
    path: String,
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    flags: i32,
    ttl: i64,
});
record!(DeleteRequest {
    path: String,
    version: i32
});
record!(GetChildrenRequest {
    path: String,
    watch: bool
});
record!(GetAllChildrenNumberRequest { path: String });
record!(GetChildren2Request {
    path: String,
    watch: bool
});
record!(CheckVersionRequest {
    path: String,
    version: i32
});
record!(SyncRequest { path: String });
record!(SyncResponse { path: String });
record!(GetAclRequest { path: String });
record!(SetAclRequest {
    path: String,
    acl: Vec<Acl>,
    version: i32,
});
record!(SetAclResponse { stat: Stat });
record!(AddWatchRequest {
    path: String,
    mode: i32
});
record!(
    /// A watch notification, sent with xid -1.
    WatcherEvent { event_type: i32, state: i32, path: String }
);
record!(ErrorResponse { err: i32 });
record!(CreateResponse { path: String });
record!(Create2Response {
    path: String,
    stat: Stat
});
record!(ExistsRequest {
    path: String,
    watch: bool
});
record!(ExistsResponse { stat: Stat });
record!(GetDataResponse {
    data: Option<Vec<u8>>,
    stat: Stat,
});
record!(GetChildrenResponse {
    children: Vec<String>,
});
record!(GetAllChildrenNumberResponse { total_number: i32 });
record!(GetChildren2Response {
    children: Vec<String>,
    stat: Stat,
});
record!(GetAclResponse {
    acl: Vec<Acl>,
    stat: Stat,
});
record!(CheckWatchesRequest {
    path: String,
    watcher_type: i32
});
record!(RemoveWatchesRequest {
    path: String,
    watcher_type: i32
});
record!(GetEphemeralsRequest {
    prefix_path: String
});
record!(GetEphemeralsResponse {
    ephemerals: Vec<String>,
});
record!(WhoAmIResponse {
    client_info: Vec<ClientInfo>,
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes computed by hand from zookeeper.jute.
    #[test]
    fn golden_connect_request() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0002,
            time_out: 30_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let mut expected = vec![
            0, 0, 0, 0, // protocolVersion
            0, 0, 0, 1, 0, 0, 0, 2, // lastZxidSeen
            0, 0, 0x75, 0x30, // timeOut 30000
            0, 0, 0, 0, 0, 0, 0, 0, // sessionId
            0, 0, 0, 16, // passwd length
        ];
        expected.extend_from_slice(&[0; 16]);
        expected.push(0); // readOnly
        assert_eq!(req.to_bytes(), expected);
        assert_eq!(ConnectRequest::from_bytes(&expected), Ok(req.clone()));

        // An old client without the readOnly byte.
        expected.pop();
        let old = ConnectRequest::from_bytes(&expected).expect("decodes");
        assert_eq!(old.read_only, None);
        assert_eq!(old.to_bytes(), expected);
    }

    #[test]
    fn golden_connect_response_and_reply_header() {
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: 4000,
            session_id: 0x0102_0304_0506_0708,
            passwd: vec![0xaa; 2],
            read_only: Some(true),
        };
        assert_eq!(
            rsp.to_bytes(),
            [0, 0, 0, 0, 0, 0, 0x0f, 0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 2, 0xaa, 0xaa, 1]
        );
        let hdr = ReplyHeader {
            xid: -2,
            zxid: 5,
            err: -101,
        };
        assert_eq!(
            hdr.to_bytes(),
            [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0x9b]
        );
    }

    #[test]
    fn golden_create_request() {
        let req = CreateRequest {
            path: "/a".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 3,
        };
        let expected = [
            0, 0, 0, 2, b'/', b'a', // path
            0xff, 0xff, 0xff, 0xff, // null data
            0, 0, 0, 1, // one ACL
            0, 0, 0, 31, // perms ALL
            0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd', // scheme
            0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e', // id
            0, 0, 0, 3, // flags EPHEMERAL_SEQUENTIAL
        ];
        assert_eq!(req.to_bytes(), expected);
        assert_eq!(CreateRequest::from_bytes(&expected), Ok(req));
    }

    #[test]
    fn golden_stat_is_68_bytes() {
        let stat = Stat {
            czxid: 1,
            data_length: 3,
            pzxid: -1,
            ..Stat::default()
        };
        let bytes = stat.to_bytes();
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&bytes[52..56], &[0, 0, 0, 3]);
        assert_eq!(&bytes[60..], &[0xff; 8]);
        assert_eq!(Stat::MIN_SIZE, 68);
    }
}
