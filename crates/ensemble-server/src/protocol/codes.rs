//! Numeric constants of the ZooKeeper protocol, with exactly Apache ZooKeeper's values
//! (`ZooDefs.OpCode`, `ZooDefs.Perms`, `KeeperException.Code`, `Watcher.Event`,
//! `CreateMode`, `Watcher.WatcherType`, `ZooDefs.AddWatchModes`).
//!
//! Contract: every enum converts to its wire integer with `.code()` (or `i32::from`) and back
//! with `from_i32`, which returns `None` for unknown values instead of panicking.

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn from_i32(v: i32) -> Option<Self> {
                match v {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub fn code(self) -> i32 {
                self as i32
            }
        }
    };
}

wire_enum! {
    /// `ZooDefs.OpCode`.
    OpCode {
        Notification = 0,
        Create = 1,
        Delete = 2,
        Exists = 3,
        GetData = 4,
        SetData = 5,
        GetAcl = 6,
        SetAcl = 7,
        GetChildren = 8,
        Sync = 9,
        Ping = 11,
        GetChildren2 = 12,
        Check = 13,
        Multi = 14,
        Create2 = 15,
        Reconfig = 16,
        CheckWatches = 17,
        RemoveWatches = 18,
        CreateContainer = 19,
        DeleteContainer = 20,
        CreateTtl = 21,
        MultiRead = 22,
        Auth = 100,
        SetWatches = 101,
        Sasl = 102,
        GetEphemerals = 103,
        GetAllChildrenNumber = 104,
        SetWatches2 = 105,
        AddWatch = 106,
        WhoAmI = 107,
        CreateSession = -10,
        CloseSession = -11,
        Error = -1,
    }
}

wire_enum! {
    /// `KeeperException.Code`.
    ErrorCode {
        Ok = 0,
        SystemError = -1,
        RuntimeInconsistency = -2,
        DataInconsistency = -3,
        ConnectionLoss = -4,
        MarshallingError = -5,
        Unimplemented = -6,
        OperationTimeout = -7,
        BadArguments = -8,
        UnknownSession = -12,
        NewConfigNoQuorum = -13,
        ReconfigInProgress = -14,
        ApiError = -100,
        NoNode = -101,
        NoAuth = -102,
        BadVersion = -103,
        NoChildrenForEphemerals = -108,
        NodeExists = -110,
        NotEmpty = -111,
        SessionExpired = -112,
        InvalidCallback = -113,
        InvalidAcl = -114,
        AuthFailed = -115,
        SessionMoved = -118,
        NotReadOnly = -119,
        EphemeralOnLocalSession = -120,
        NoWatcher = -121,
        RequestTimeout = -122,
        ReconfigDisabled = -123,
        SessionClosedRequireSaslAuth = -124,
        QuotaExceeded = -125,
        ThrottledOp = -127,
    }
}

wire_enum! {
    /// `Watcher.Event.EventType`.
    EventType {
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
}

wire_enum! {
    /// `Watcher.Event.KeeperState`.
    KeeperState {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Expired = -112,
        Closed = 7,
    }
}

wire_enum! {
    /// `CreateMode`: the `flags` field of a create request.
    CreateMode {
        Persistent = 0,
        Ephemeral = 1,
        PersistentSequential = 2,
        EphemeralSequential = 3,
        Container = 4,
        PersistentWithTtl = 5,
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

wire_enum! {
    /// `Watcher.WatcherType`, the `type` of checkWatches/removeWatches.
    WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
}

wire_enum! {
    /// `ZooDefs.AddWatchModes`, the `mode` of addWatch.
    AddWatchMode {
        Persistent = 0,
        PersistentRecursive = 1,
    }
}

/// `ZooDefs.Perms`: ACL permission bits.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 1 << 1;
    pub const CREATE: i32 = 1 << 2;
    pub const DELETE: i32 = 1 << 3;
    pub const ADMIN: i32 = 1 << 4;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// Reserved xids (`ClientCnxn`): notifications, pings, auth and setWatches replies.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

macro_rules! into_i32 {
    ($($t:ty),*) => {$(impl From<$t> for i32 { fn from(v: $t) -> i32 { v as i32 } })*};
}
into_i32!(
    OpCode,
    ErrorCode,
    EventType,
    KeeperState,
    CreateMode,
    WatcherType,
    AddWatchMode
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_zookeeper() {
        assert_eq!(OpCode::Create2.code(), 15);
        assert_eq!(OpCode::CreateTtl.code(), 21);
        assert_eq!(OpCode::WhoAmI.code(), 107);
        assert_eq!(OpCode::CloseSession.code(), -11);
        assert_eq!(ErrorCode::NoChildrenForEphemerals.code(), -108);
        assert_eq!(ErrorCode::ReconfigDisabled.code(), -123);
        assert_eq!(ErrorCode::ThrottledOp.code(), -127);
        assert_eq!(KeeperState::Expired.code(), -112);
        assert_eq!(EventType::PersistentWatchRemoved.code(), 7);
        assert_eq!(perms::ALL, 31);
    }

    #[test]
    fn round_trip_and_unknown() {
        for op in OpCode::ALL {
            assert_eq!(OpCode::from_i32(op.code()), Some(*op));
        }
        for e in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_i32(e.code()), Some(*e));
        }
        assert_eq!(OpCode::from_i32(10), None);
        assert_eq!(ErrorCode::from_i32(-126), None);
        assert_eq!(CreateMode::from_i32(7), None);
    }

    #[test]
    fn create_mode_flags() {
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(CreateMode::EphemeralSequential.is_sequential());
        assert!(CreateMode::PersistentSequentialWithTtl.is_ttl());
        assert!(!CreateMode::Container.is_sequential());
    }
}
