//! `msa`: the chat platform with paid message credits, as one binary.
//!
//! This file only parses the command line and hands over; each subcommand lives in its own module.

mod asyncapi;
mod bus;
mod chaos;
mod chat;
mod cli;
mod consumers;
mod contexts;
mod dlq;
mod edge;
mod gateway;
mod payment;
mod projection_start;
mod projections;
mod remote;
mod self_contained;
mod serve;
mod shutdown;
mod storage;
mod telemetry;
mod trail;
mod user;
mod user_chat;
mod user_chat_export;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: glibc's keeps the memory of bursts (19 MiB per
/// password hash, batches of events) and the resident size of a busy server only grew; mimalloc
/// gives it back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::cli::{Cli, Command, DlqCommand, PaymentsCommand, ProjectionsCommand, UsersCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let export = cli
        .otlp_endpoint
        .filter(|endpoint| !endpoint.trim().is_empty())
        .map(|endpoint| telemetry::Export {
            endpoint,
            service_name: cli
                .otel_service_name
                .clone()
                .unwrap_or_else(|| match &cli.command {
                    Some(Command::Serve(args)) => match args.service {
                        Some(service) => format!("msa-{}", service.context()),
                        None => "msa".into(),
                    },
                    Some(Command::Gateway(_)) => "msa-gateway".into(),
                    _ => "msa".into(),
                }),
        });
    // Kept to the end of main: dropping it exports the spans still waiting.
    let _flush = match telemetry::init(cli.log_format, export) {
        Ok(flush) => flush,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command.unwrap_or_default() {
        Command::Serve(args) => serve::run(*args).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Migrate(args) => storage::migrate(&args).await,
        Command::Relay(args) => bus::relay(args).await,
        Command::Projections(ProjectionsCommand::List(args)) => projections::list(args).await,
        Command::Projections(ProjectionsCommand::Rebuild(args)) => projections::rebuild(args).await,
        Command::Dlq(DlqCommand::List(args)) => dlq::list(args).await,
        Command::Dlq(DlqCommand::Replay(args)) => dlq::replay(args).await,
        Command::Trail(args) => trail::run(args).await,
        Command::Payments(PaymentsCommand::Reconcile(args)) => payment::reconcile(args).await,
        Command::Users(UsersCommand::GrantAdmin(args)) => user::change_admin(args, true).await,
        Command::Users(UsersCommand::RevokeAdmin(args)) => user::change_admin(args, false).await,
        Command::Users(UsersCommand::RotateSigningKey(args)) => {
            user::rotate_signing_key(args).await
        }
        Command::Users(UsersCommand::RetireSigningKey(args)) => {
            user::retire_signing_key(args).await
        }
        Command::Bench(command) => msa_bench::run(command).await,
        Command::Chaos(args) => chaos::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line that names what is wrong, then its causes.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
