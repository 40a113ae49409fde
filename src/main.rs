//! The `ensemble` command: one binary for the operator, the server and the tools around them.

use clap::{Parser, Subcommand};

use ensemble::operator::OperatorOptions;
use ensemble::telemetry::{self, LogFormat};
use ensemble_server::bench::BenchArgs;
use ensemble_server::cli::{server_serves_on_one_thread, LocalArgs, ServerArgs};

/// mimalloc: under 8 × 8 writes it took a member's CPU per write from 60 to 51 µs (see the
/// README's "Measured").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ensemble",
    version,
    about = "ZooKeeper-compatible coordination ensembles on Kubernetes"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "ENSEMBLE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller for CoordinationCluster resources.
    Operator(OperatorOptions),
    /// Run one member of an ensemble.
    Server(ServerArgs),
    /// Run an ensemble on this machine, without Kubernetes.
    Local(LocalArgs),
    /// Load a ZooKeeper-compatible server and report throughput and latency.
    Bench(BenchArgs),
    /// Print the CoordinationCluster CRD as YAML.
    Crd {
        /// Print the Helm chart's template of the CRD instead.
        #[arg(long)]
        chart: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = match cli.command {
        Command::Server(_) if server_serves_on_one_thread() => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd { chart } => {
            let yaml = if chart {
                ensemble::api::chart_crd_yaml()
            } else {
                ensemble::api::crd_yaml()
            };
            use std::io::Write;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Operator(options) => {
            telemetry::init_logging(cli.log_format);
            ensemble::operator::run(options).await
        }
        Command::Server(args) => {
            telemetry::init_logging(cli.log_format);
            Ok(ensemble_server::cli::run_server(args).await?)
        }
        Command::Local(args) => {
            telemetry::init_logging(cli.log_format);
            Ok(ensemble_server::cli::run_local(args).await?)
        }
        Command::Bench(args) => {
            telemetry::init_logging(cli.log_format);
            Ok(ensemble_server::bench::run(args).await?)
        }
    }
}
