//! The `countersign` binary: parses the command line and runs the chosen command.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use countersign::app::{Listeners, shutdown_signal};
use countersign::cli::{self, Cli, Command};
use countersign::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve | Command::Demo(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter(default_level))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("countersign: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader went away (`countersign audit | head`): nothing left to say to anyone.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("countersign: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether writing standard output failed because its reader closed the pipe (EPIPE; Rust
/// ignores SIGPIPE, so the write returns the error instead of ending the process).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `RUST_LOG`, else `default_level`; ldap3_proto always off: it logs raw client bytes (errors)
/// and whole messages (trace), which can hold passwords and OTPs.
fn log_filter(default_level: &str) -> EnvFilter {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    match "ldap3_proto=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => {
            // writeln, not println: a closed pipe is an error to return, not a panic.
            let path = file.unwrap_or(cli.config);
            let mut out = std::io::stdout().lock();
            match Config::load(&path) {
                Ok(c) => {
                    writeln!(
                        out,
                        "{}: ok ({} directories, {} delivery mechanisms)",
                        path.display(),
                        c.directories.len(),
                        c.mechanisms.len()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        writeln!(out, "{}: {e}", path.display())?;
                    }
                    writeln!(out, "{} problem(s) found", errors.0.len())?;
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Config(cmd) => {
            cli::run_config(&cli.config, cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            countersign::demo::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let app = cli::load_app(&cli.config)?;
            let listeners = Listeners::bind(&app.config).await?;
            if listeners.is_empty() {
                anyhow::bail!(
                    "nothing to serve: set [listen] http, ldap or ldaps in {}",
                    cli.config.display()
                );
            }
            for (front, l) in [
                ("HTTP", &listeners.http),
                ("LDAP", &listeners.ldap),
                ("LDAPS", &listeners.ldaps),
            ] {
                if let Some(addr) = l.as_ref().and_then(|l| l.local_addr().ok()) {
                    tracing::info!(%addr, "{front} front listening");
                }
            }
            app.serve(listeners, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => {
            let app = cli::load_app(&cli.config)?;
            cli::run_user(&app, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(args) => {
            let app = cli::load_app(&cli.config)?;
            cli::run_audit(&app, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Approvals(cmd) => {
            let app = cli::load_app(&cli.config)?;
            cli::run_approvals(&app, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox(cmd) => {
            let app = cli::load_app(&cli.config)?;
            cli::run_outbox(&app, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(cmd) => {
            let app = cli::load_app(&cli.config)?;
            cli::run_keys(&app, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(cmd) => {
            let app = cli::load_app(&cli.config)?;
            Ok(if cli::run_policy(&app, cmd).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Manager { identity } => {
            let app = cli::load_app(&cli.config)?;
            let found = cli::run_manager(&app, &identity).await?;
            Ok(if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
