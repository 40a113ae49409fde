//! Server configuration: the zoo.cfg keys the operator writes, in Java properties
//! `key=value` form.
//!
//! Contract: [`ServerConfig::default`] mirrors Apache ZooKeeper's defaults;
//! [`ServerConfig::from_properties`] reads `key=value` (or `key: value`) lines,
//! skipping blank lines and `#`/`!` comments, and fails with a [`ConfigError`] that
//! names the offending key or line. Keys it does not know (ZooKeeper has many) are
//! kept in [`ServerConfig::ignored_keys`] for the caller to report, not rejected.
//! As in ZooKeeper, the session timeout bounds default to 2 and 20 ticks unless
//! set explicitly, and `min <= max` is required. The admin HTTP port is ZooKeeper's
//! `admin.enableServer` (default true) and `admin.serverPort` (default 8080; the
//! operator's `adminPort` is the same setting).
//!
//! Ensemble keys: `myid` (this member's id, default 1), ZooKeeper's
//! `server.<id>=<host>:<peerPort>[:<electionPort>][:participant|observer][;[<clientHost>:]<clientPort>]`
//! lines (the ensemble a member founds together with the others listed, observers
//! joining as learners; the election port is accepted and unused, Raft needs one
//! port), `joinExisting=true` (found nothing: wait to be added to a running
//! ensemble) and `reconfigEnabled` (ZooKeeper's switch for the `reconfig` operation).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

use crate::protocol::DEFAULT_MAX_FRAME;

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("line {line}: expected `key=value`, found {text:?}")]
    MalformedLine { line: usize, text: String },
    #[error("{key}: invalid value {value:?}: {reason}")]
    InvalidValue {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("minSessionTimeout ({min} ms) must not exceed maxSessionTimeout ({max} ms)")]
    SessionBounds { min: i32, max: i32 },
    #[error("{key}: invalid server line {value:?}: {reason}")]
    ServerLine {
        key: String,
        value: String,
        reason: String,
    },
}

/// What a `server.<id>` line says a member does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    /// A voter.
    Participant,
    /// A non-voting member (a Raft learner).
    Observer,
}

/// One `server.<id>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub host: String,
    pub peer_port: u16,
    pub role: ServerRole,
    /// Where clients reach it, if the line says.
    pub client: Option<(String, u16)>,
}

impl ServerSpec {
    /// `host:peerPort`, the address other members dial.
    pub fn peer_address(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }

    /// Parses the value of a `server.<id>` line.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (server, client) = match value.split_once(';') {
            Some((server, client)) => (server.trim(), Some(client.trim())),
            None => (value.trim(), None),
        };
        let parts: Vec<&str> = server.split(':').collect();
        let (host, peer, rest) = match parts.as_slice() {
            [host, peer, rest @ ..] if !host.is_empty() => (*host, *peer, rest),
            _ => return Err("expected <host>:<peerPort>".into()),
        };
        let peer_port = peer
            .parse()
            .map_err(|_| format!("peer port {peer:?} is not a port number"))?;
        let mut role = ServerRole::Participant;
        for part in rest {
            match *part {
                "participant" => role = ServerRole::Participant,
                "observer" => role = ServerRole::Observer,
                port if port.parse::<u16>().is_ok() => {}
                other => return Err(format!("unknown part {other:?}")),
            }
        }
        let client = match client {
            None | Some("") => None,
            Some(text) => {
                let (host, port) = text.rsplit_once(':').unwrap_or(("0.0.0.0", text));
                let port = port
                    .parse()
                    .map_err(|_| format!("client port {port:?} is not a port number"))?;
                Some((host.to_owned(), port))
            }
        };
        Ok(Self {
            host: host.to_owned(),
            peer_port,
            role,
            client,
        })
    }
}

/// One member's settings. See the module contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `clientPort`.
    pub client_port: u16,
    /// `tickTime`, milliseconds: the unit of session expiry checks.
    pub tick_time_ms: u32,
    /// `minSessionTimeout`, milliseconds.
    pub min_session_timeout_ms: i32,
    /// `maxSessionTimeout`, milliseconds.
    pub max_session_timeout_ms: i32,
    /// `maxClientCnxns`: concurrent connections per client IP; 0 means no limit.
    pub max_client_connections: u32,
    /// `jute.maxbuffer`: the largest request frame body, in bytes.
    pub jute_max_buffer: usize,
    /// `4lw.commands.whitelist`: four-letter words answered on the client port.
    pub four_letter_words: BTreeSet<String>,
    /// `extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `dataDir`: where the transaction log and snapshots live. Without one the
    /// member keeps its data in memory only (`ensemble local` without `--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// `snapCount`: transactions between snapshots (ZooKeeper's default 100000).
    pub snap_count: u64,
    /// `autopurge.snapRetainCount`: snapshots kept, with the logs needed after the
    /// oldest of them (at least 3, as in ZooKeeper).
    pub snap_retain_count: usize,
    /// `znode.container.checkIntervalMs`: how often empty containers and expired
    /// TTL nodes are looked for.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxNeverUsedIntervalMs`: a container that never had children
    /// is deleted after this long (0 = never).
    pub container_max_never_used_ms: i64,
    /// `admin.serverPort` (ZooKeeper's name; `adminPort` is accepted too): the admin HTTP port.
    pub admin_port: u16,
    /// `admin.enableServer`: whether the admin HTTP port is served at all.
    pub admin_enabled: bool,
    /// `admin.tokenFile`: the bearer token the admin port's mutating calls need.
    pub admin_token_file: Option<PathBuf>,
    /// `peerPort`: the Raft port.
    pub peer_port: u16,
    /// `peerAddressTemplate`, e.g. `x-{ordinal}.x-peers.ns.svc.cluster.local`.
    pub peer_address_template: Option<String>,
    /// `superDigest`: `super:base64(sha1)` granting super-user rights to `addauth`. Also
    /// read as `DigestAuthenticationProvider.superDigest`, the form a ZooKeeper zoo.cfg
    /// takes (ZooKeeper turns an unknown key `k` into the system property `zookeeper.k`).
    pub super_digest: Option<String>,
    /// `myid`: this member's id (the StatefulSet ordinal + 1).
    pub my_id: u64,
    /// `server.<id>` lines: the ensemble this member founds with the others listed.
    pub servers: std::collections::BTreeMap<u64, ServerSpec>,
    /// `joinExisting`: found nothing; wait to be added to a running ensemble.
    pub join_existing: bool,
    /// `reconfigEnabled`: whether the ZooKeeper `reconfig` operation is served.
    pub reconfig_enabled: bool,
    /// `initLimit`, in ticks: as in ZooKeeper, how long a member joining through
    /// `reconfig` may take to connect and catch up before the reconfig gives up.
    pub init_limit: u32,
    /// `shutdownDrainMs`: on SIGTERM, how long a member keeps serving the clients it has
    /// while refusing new connections, before it hands leadership over and closes them.
    /// Behind a Kubernetes Service this covers the time until the terminating pod's
    /// endpoint is gone from every node's rules, so that clients moving away are routed
    /// only to members that stay. 0 (the default) stops at once.
    pub shutdown_drain_ms: u64,
    /// Keys present in the input that this server does not use.
    pub ignored_keys: Vec<String>,
}

const DEFAULT_TICK_MS: u32 = 2_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            client_port: 2181,
            tick_time_ms: DEFAULT_TICK_MS,
            min_session_timeout_ms: 2 * DEFAULT_TICK_MS as i32,
            max_session_timeout_ms: 20 * DEFAULT_TICK_MS as i32,
            max_client_connections: 60,
            jute_max_buffer: DEFAULT_MAX_FRAME,
            // The operator's default too: the words health checks and monitoring use.
            four_letter_words: ["ruok", "srvr", "mntr", "conf", "isro"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            extended_types_enabled: false,
            data_dir: None,
            snap_count: 100_000,
            snap_retain_count: 3,
            container_check_interval_ms: 60_000,
            container_max_never_used_ms: 0,
            admin_port: 8080,
            admin_enabled: true,
            admin_token_file: None,
            peer_port: 2888,
            peer_address_template: None,
            super_digest: None,
            my_id: 1,
            servers: std::collections::BTreeMap::new(),
            join_existing: false,
            reconfig_enabled: false,
            init_limit: 10,
            shutdown_drain_ms: 0,
            ignored_keys: Vec::new(),
        }
    }
}

fn parse<T: FromStr>(key: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ConfigError::InvalidValue {
            key,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

fn positive(key: &'static str, value: &str) -> Result<i32, ConfigError> {
    let v: i32 = parse(key, value)?;
    if v <= 0 {
        return Err(ConfigError::InvalidValue {
            key,
            value: value.to_owned(),
            reason: "must be positive".into(),
        });
    }
    Ok(v)
}

impl ServerConfig {
    /// Parses zoo.cfg-style properties; see the module contract.
    pub fn from_properties(text: &str) -> Result<Self, ConfigError> {
        let mut cfg = Self::default();
        let mut min_timeout = None;
        let mut max_timeout = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some(split) = line.find(['=', ':']) else {
                return Err(ConfigError::MalformedLine {
                    line: index + 1,
                    text: raw.to_owned(),
                });
            };
            let key = line[..split].trim();
            let value = line[split + 1..].trim();
            match key {
                "clientPort" => cfg.client_port = parse("clientPort", value)?,
                "tickTime" => {
                    let tick = positive("tickTime", value)?;
                    cfg.tick_time_ms = tick.unsigned_abs();
                }
                "minSessionTimeout" => min_timeout = Some(positive("minSessionTimeout", value)?),
                "maxSessionTimeout" => max_timeout = Some(positive("maxSessionTimeout", value)?),
                "maxClientCnxns" => cfg.max_client_connections = parse("maxClientCnxns", value)?,
                "jute.maxbuffer" => {
                    cfg.jute_max_buffer = positive("jute.maxbuffer", value)?.unsigned_abs() as usize
                }
                "4lw.commands.whitelist" => {
                    cfg.four_letter_words = value
                        .split(',')
                        .map(str::trim)
                        .filter(|w| !w.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "extendedTypesEnabled" => {
                    cfg.extended_types_enabled = parse("extendedTypesEnabled", value)?
                }
                "dataDir" => cfg.data_dir = Some(PathBuf::from(value)),
                "snapCount" => {
                    cfg.snap_count = u64::try_from(positive("snapCount", value)?).unwrap_or(1)
                }
                "autopurge.snapRetainCount" => {
                    let retain: usize = parse("autopurge.snapRetainCount", value)?;
                    cfg.snap_retain_count = retain.max(3);
                }
                "znode.container.checkIntervalMs" => {
                    cfg.container_check_interval_ms =
                        u64::try_from(positive("znode.container.checkIntervalMs", value)?)
                            .unwrap_or(1)
                }
                "znode.container.maxNeverUsedIntervalMs" => {
                    cfg.container_max_never_used_ms =
                        parse("znode.container.maxNeverUsedIntervalMs", value)?
                }
                "admin.serverPort" | "adminPort" => {
                    cfg.admin_port = parse("admin.serverPort", value)?
                }
                "admin.enableServer" => cfg.admin_enabled = parse("admin.enableServer", value)?,
                "admin.tokenFile" => cfg.admin_token_file = Some(PathBuf::from(value)),
                "peerPort" => cfg.peer_port = parse("peerPort", value)?,
                "peerAddressTemplate" => cfg.peer_address_template = Some(value.to_owned()),
                "superDigest" | "DigestAuthenticationProvider.superDigest" => {
                    cfg.super_digest = Some(value.to_owned())
                }
                "myid" => cfg.my_id = parse("myid", value)?,
                "joinExisting" => cfg.join_existing = parse("joinExisting", value)?,
                "reconfigEnabled" => cfg.reconfig_enabled = parse("reconfigEnabled", value)?,
                "initLimit" => {
                    cfg.init_limit = u32::try_from(positive("initLimit", value)?).unwrap_or(1)
                }
                "shutdownDrainMs" => cfg.shutdown_drain_ms = parse("shutdownDrainMs", value)?,
                server if server.starts_with("server.") => {
                    let invalid = |reason: String| ConfigError::ServerLine {
                        key: server.to_owned(),
                        value: value.to_owned(),
                        reason,
                    };
                    let id: u64 = server["server.".len()..]
                        .parse()
                        .map_err(|_| invalid("the id after `server.` is not a number".into()))?;
                    if id == 0 {
                        return Err(invalid("member ids start at 1".into()));
                    }
                    cfg.servers
                        .insert(id, ServerSpec::parse(value).map_err(invalid)?);
                }
                other => cfg.ignored_keys.push(other.to_owned()),
            }
        }
        let tick = i32::try_from(cfg.tick_time_ms).unwrap_or(i32::MAX);
        cfg.min_session_timeout_ms = min_timeout.unwrap_or(tick.saturating_mul(2));
        cfg.max_session_timeout_ms = max_timeout.unwrap_or(tick.saturating_mul(20));
        if cfg.min_session_timeout_ms > cfg.max_session_timeout_ms {
            return Err(ConfigError::SessionBounds {
                min: cfg.min_session_timeout_ms,
                max: cfg.max_session_timeout_ms,
            });
        }
        Ok(cfg)
    }

    /// `host:port` at which the other members reach this one: its `server.<id>`
    /// line, else the peer address template with its ordinal, else loopback.
    pub fn advertised_peer_address(&self) -> String {
        if let Some(spec) = self.servers.get(&self.my_id) {
            return spec.peer_address();
        }
        if let Some(template) = &self.peer_address_template {
            let ordinal = self.my_id.saturating_sub(1);
            let address = template.replace("{ordinal}", &ordinal.to_string());
            return if address.contains(':') {
                address
            } else {
                format!("{address}:{}", self.peer_port)
            };
        }
        format!("127.0.0.1:{}", self.peer_port)
    }

    /// This member's address in the membership when it founds an ensemble alone:
    /// `host:peerPort;clientHost:clientPort`, the client address being its
    /// `server.<id>` line's, else `clientPort` on the advertised peer host.
    pub fn advertised_member_address(&self) -> String {
        let peer = self.advertised_peer_address();
        let client = match self
            .servers
            .get(&self.my_id)
            .and_then(|s| s.client.as_ref())
        {
            Some((host, port)) => format!("{host}:{port}"),
            None => {
                let host = peer
                    .rsplit_once(':')
                    .map_or(peer.as_str(), |(host, _)| host);
                format!("{host}:{}", self.client_port)
            }
        };
        format!("{peer};{client}")
    }

    /// Whether the four-letter word `word` may be answered (`*` allows all).
    pub fn allows_four_letter_word(&self, word: &str) -> bool {
        self.four_letter_words.contains("*") || self.four_letter_words.contains(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_mirror_zookeeper() {
        let cfg = ServerConfig::from_properties("").expect("empty is valid");
        assert_eq!(cfg, ServerConfig::default());
        assert_eq!(cfg.min_session_timeout_ms, 4_000);
        assert_eq!(cfg.max_session_timeout_ms, 40_000);
        assert_eq!(cfg.jute_max_buffer, 1 << 20);
    }

    #[test]
    fn parses_every_key() {
        let cfg = ServerConfig::from_properties(
            "# written by the operator\n\
             clientPort=2182\n\
             tickTime = 1000\n\
             maxClientCnxns=0\n\
             jute.maxbuffer=4096\n\
             4lw.commands.whitelist=ruok, srvr,\n\
             extendedTypesEnabled=true\n\
             dataDir=/data\n\
             adminPort=8081\n\
             peerPort: 2889\n\
             peerAddressTemplate=x-{ordinal}.x-peers\n\
             initLimit=5\n\
             syncLimit=5\n\
             myid=2\n\
             reconfigEnabled=true\n\
             shutdownDrainMs=2500\n\
             DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
             server.1=a:2888:3888:participant;2181\n\
             server.2=b:2889;b:2182\n\
             server.3=c:2890:3890:observer\n",
        )
        .expect("valid");
        assert_eq!(cfg.client_port, 2182);
        assert_eq!(cfg.tick_time_ms, 1000);
        assert_eq!(
            (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms),
            (2_000, 20_000)
        );
        assert_eq!(cfg.max_client_connections, 0);
        assert_eq!(cfg.jute_max_buffer, 4096);
        assert!(cfg.allows_four_letter_word("ruok") && cfg.allows_four_letter_word("srvr"));
        assert!(!cfg.allows_four_letter_word("mntr"));
        assert!(cfg.extended_types_enabled);
        assert_eq!(cfg.data_dir, Some(PathBuf::from("/data")));
        assert_eq!((cfg.admin_port, cfg.peer_port), (8081, 2889));
        assert_eq!(
            cfg.peer_address_template.as_deref(),
            Some("x-{ordinal}.x-peers")
        );
        assert_eq!(cfg.init_limit, 5);
        assert_eq!(cfg.ignored_keys, vec!["syncLimit".to_owned()]);
        assert_eq!(cfg.my_id, 2);
        assert!(cfg.reconfig_enabled && !cfg.join_existing);
        assert_eq!(cfg.shutdown_drain_ms, 2500);
        assert_eq!(
            cfg.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert_eq!(cfg.servers.len(), 3);
        assert_eq!(cfg.advertised_peer_address(), "b:2889");
        assert_eq!(cfg.advertised_member_address(), "b:2889;b:2182");
        let one = &cfg.servers[&1];
        assert_eq!(
            (one.role, one.client.clone()),
            (ServerRole::Participant, Some(("0.0.0.0".into(), 2181)))
        );
        assert_eq!(cfg.servers[&2].client, Some(("b".into(), 2182)));
        assert_eq!(cfg.servers[&3].role, ServerRole::Observer);
    }

    #[test]
    fn bad_server_lines_name_the_key() {
        for (text, reason) in [
            ("server.x=a:2888", "not a number"),
            ("server.0=a:2888", "start at 1"),
            ("server.1=a", "<host>:<peerPort>"),
            ("server.1=a:port", "not a port number"),
            ("server.1=a:2888:3888:voter", "unknown part"),
            ("server.1=a:2888;b:x", "client port"),
        ] {
            let error = ServerConfig::from_properties(text)
                .expect_err(text)
                .to_string();
            assert!(error.contains(text.split('=').next().unwrap()), "{error}");
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn advertised_address_comes_from_the_template_without_a_server_line() {
        let cfg =
            ServerConfig::from_properties("myid=3\npeerAddressTemplate=x-{ordinal}.x-peers:2888")
                .expect("valid");
        assert_eq!(cfg.advertised_peer_address(), "x-2.x-peers:2888");
        assert_eq!(
            cfg.advertised_member_address(),
            "x-2.x-peers:2888;x-2.x-peers:2181"
        );
        let bare = ServerConfig::from_properties(
            "myid=1\npeerAddressTemplate=x-{ordinal}.x-peers\npeerPort=2889\nclientPort=2182",
        )
        .expect("valid");
        assert_eq!(
            bare.advertised_member_address(),
            "x-0.x-peers:2889;x-0.x-peers:2182"
        );
    }

    #[test]
    fn admin_keys_use_zookeepers_names() {
        let cfg = ServerConfig::from_properties("admin.serverPort=9090\nadmin.enableServer=false")
            .expect("valid");
        assert_eq!((cfg.admin_port, cfg.admin_enabled), (9090, false));
        assert!(cfg.ignored_keys.is_empty());
        let err = ServerConfig::from_properties("admin.enableServer=no").expect_err("bool");
        assert!(err
            .to_string()
            .starts_with("admin.enableServer: invalid value"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = ServerConfig::from_properties("clientPort=99999").expect_err("out of range");
        assert!(err
            .to_string()
            .starts_with("clientPort: invalid value \"99999\""));
        let err = ServerConfig::from_properties("tickTime=0").expect_err("zero");
        assert!(err.to_string().contains("tickTime"));
        let err = ServerConfig::from_properties("extendedTypesEnabled=yes").expect_err("bool");
        assert!(err.to_string().contains("extendedTypesEnabled"));
        let err = ServerConfig::from_properties("\njust words").expect_err("no =");
        assert_eq!(
            err,
            ConfigError::MalformedLine {
                line: 2,
                text: "just words".into()
            }
        );
        let err = ServerConfig::from_properties("minSessionTimeout=5000\nmaxSessionTimeout=4000")
            .expect_err("bounds");
        assert!(matches!(err, ConfigError::SessionBounds { .. }));
    }
}
