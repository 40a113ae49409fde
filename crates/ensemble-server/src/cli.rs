//! The `ensemble server` and `ensemble local` subcommands, ready for the root binary
//! to wire into its clap parser.
//!
//! Contract: [`run_server`] reads a zoo.cfg-style file ([`ServerConfig`]), binds
//! `0.0.0.0:clientPort` and, if `admin.enableServer`, `0.0.0.0:admin.serverPort`,
//! and serves until Ctrl-C. [`run_local`] runs an ensemble on 127.0.0.1; only
//! `--members 1` exists until replication lands (other sizes are a
//! [`CliError::MembersUnsupported`]). Its first line on stdout is the connection
//! string; the admin port (`--admin-port`, 0 = any free port) is announced on
//! stderr as `admin: http://127.0.0.1:PORT`, never on stdout. Data is kept in memory only for now; `--data-dir` is accepted for the
//! interface's sake.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ServerConfig};
use crate::server::{self, ServerError};

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
    /// Directory for the members' data (not yet used: data is in memory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP port of the first member (/livez, /readyz, /status, /metrics); 0 picks
    /// a free port.
    #[arg(long, default_value_t = 8080)]
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
    let listeners = server::Listeners {
        client: listener,
        admin,
    };
    server::run(listeners, config, ctrl_c_token()).await?;
    Ok(())
}

/// `ensemble local --members 1 --client-port P [--data-dir D]`.
pub async fn run_local(args: LocalArgs) -> Result<(), CliError> {
    if args.members != 1 {
        return Err(CliError::MembersUnsupported(args.members));
    }
    if args.data_dir.is_some() {
        tracing::warn!("--data-dir is not used yet: this build keeps data in memory");
    }
    let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.client_port))).await?;
    let port = listener
        .local_addr()
        .map_or(args.client_port, |addr| addr.port());
    let admin = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.admin_port))).await?;
    let admin_port = admin
        .local_addr()
        .map_or(args.admin_port, |addr| addr.port());
    let config = ServerConfig {
        client_port: port,
        admin_port,
        data_dir: args.data_dir,
        ..ServerConfig::default()
    };
    println!("127.0.0.1:{port}");
    eprintln!("admin: http://127.0.0.1:{admin_port}");
    let listeners = server::Listeners {
        client: listener,
        admin: Some(admin),
    };
    server::run(listeners, config, ctrl_c_token()).await?;
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
    async fn a_missing_config_file_is_named() {
        let err = run_server(ServerArgs {
            config: PathBuf::from("/nonexistent/zoo.cfg"),
        })
        .await
        .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/zoo.cfg"));
    }
}
