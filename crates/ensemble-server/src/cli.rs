//! The `ensemble server` and `ensemble local` subcommands, ready for the root binary
//! to wire into its clap parser.
//!
//! Contract: [`run_server`] reads a zoo.cfg-style file ([`ServerConfig`]), recovers
//! the member's data directory, binds `0.0.0.0:clientPort` and, if
//! `admin.enableServer`, `0.0.0.0:admin.serverPort`, and serves until Ctrl-C.
//! [`run_local`] runs an ensemble on 127.0.0.1; only `--members 1` exists until
//! replication lands (other sizes are a [`CliError::MembersUnsupported`]). With
//! `--data-dir D` member `i` keeps its data in `D/member-i`, so a second run on the
//! same directory finds it; without, data lives in memory. Its first line on stdout
//! is the connection string, printed once the member has recovered and listens;
//! the admin port (`--admin-port`, by default any free port, so that several
//! local ensembles and tests never collide) is announced on stderr as
//! `admin: http://127.0.0.1:PORT`, never on stdout. Every startup failure
//! (configuration, data directory, port) is an error that names what failed,
//! before anything is served.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ServerConfig};
use crate::server::{Listeners, Member, ServerError};

/// `ensemble server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// zoo.cfg-style `key=value` configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `ensemble local`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Number of members (only 1 until replication is built).
    #[arg(long, default_value_t = 1)]
    pub members: u16,
    /// Client port of the first member; member i listens on this port + i.
    #[arg(long, default_value_t = 2181)]
    pub client_port: u16,
    /// Directory for the members' data (member i uses DIR/member-i); without it,
    /// data is kept in memory and lost on exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP port of the first member (/livez, /readyz, /status, /metrics); by
    /// default (0) any free port, announced on stderr.
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
}

/// Why a subcommand failed.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("cannot read configuration file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error(
        "--members {0}: only single-member ensembles are supported; replication is not built yet"
    )]
    MembersUnsupported(u16),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// A token cancelled by Ctrl-C.
fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        // If the signal cannot be installed, serving on until killed is the best option.
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    token
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })
}

/// `ensemble server --config FILE`.
pub async fn run_server(args: ServerArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.config).map_err(|source| CliError::ReadConfig {
        path: args.config.clone(),
        source,
    })?;
    let config = ServerConfig::from_properties(&text).map_err(|source| CliError::Config {
        path: args.config.clone(),
        source,
    })?;
    for key in &config.ignored_keys {
        tracing::warn!(key = %key, "ignoring unknown configuration key");
    }
    let member = Member::open(config.clone())?;
    let listener = bind(SocketAddr::from((
        Ipv4Addr::UNSPECIFIED,
        config.client_port,
    )))
    .await?;
    let admin = if config.admin_enabled {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.admin_port));
        let admin = bind(addr).await?;
        tracing::info!(port = config.admin_port, "serving the admin HTTP port");
        Some(admin)
    } else {
        None
    };
    tracing::info!(port = config.client_port, "serving clients");
    let listeners = Listeners {
        client: listener,
        admin,
    };
    member.serve(listeners, ctrl_c_token()).await?;
    Ok(())
}

/// `ensemble local --members 1 --client-port P [--data-dir D]`.
pub async fn run_local(args: LocalArgs) -> Result<(), CliError> {
    if args.members != 1 {
        return Err(CliError::MembersUnsupported(args.members));
    }
    let member = Member::open(ServerConfig {
        client_port: args.client_port,
        data_dir: args.data_dir.map(|dir| dir.join("member-1")),
        ..ServerConfig::default()
    })?;
    let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.client_port))).await?;
    let port = listener
        .local_addr()
        .map_or(args.client_port, |addr| addr.port());
    let admin = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.admin_port))).await?;
    let admin_port = admin
        .local_addr()
        .map_or(args.admin_port, |addr| addr.port());
    println!("127.0.0.1:{port}");
    eprintln!("admin: http://127.0.0.1:{admin_port}");
    let listeners = Listeners {
        client: listener,
        admin: Some(admin),
    };
    member.serve(listeners, ctrl_c_token()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn more_than_one_member_is_refused_clearly() {
        let err = run_local(LocalArgs {
            members: 3,
            client_port: 0,
            data_dir: None,
            admin_port: 0,
        })
        .await
        .expect_err("not built yet");
        assert!(err.to_string().contains("replication is not built yet"));
    }

    #[tokio::test]
    async fn an_unusable_data_directory_is_named() {
        let file = std::env::temp_dir().join(format!("ensemble-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"").expect("temp file");
        let err = run_local(LocalArgs {
            members: 1,
            client_port: 0,
            data_dir: Some(file.clone()),
            admin_port: 0,
        })
        .await
        .expect_err("a file is not a directory");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_file(file);
    }

    #[tokio::test]
    async fn a_missing_config_file_is_named() {
        let err = run_server(ServerArgs {
            config: PathBuf::from("/nonexistent/zoo.cfg"),
        })
        .await
        .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/zoo.cfg"));
    }
}
