//! Command line: clap arguments, validated into the model's inputs, and the thin `report`,
//! `trace` and `rules` views over the same model the TUI draws.

pub mod rules;
pub mod trace;
pub mod tui;
pub mod tui_source;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod embedded;
pub mod inputs;
pub mod report;
pub mod report_journey;
pub mod scenario;

/// Exit status contract (interface.md): 0 success; 1 success with warnings; 2 unusable input.
pub const EXIT_OK: u8 = 0;
pub const EXIT_WARNINGS: u8 = 1;
pub const EXIT_UNUSABLE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "hoptrace",
    version,
    about = "How Kubernetes load balancing treated real traffic: \
client → Azure LB → node netfilter → pod, for every captured HTTP request"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: INPUTs (and --capture/--rules/--cluster) open the TUI on a terminal,
    /// otherwise print their report; none at all: the embedded walkthrough.
    #[command(flatten)]
    pub top: tui::TuiArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One record per captured HTTP request (`--connections`: per connection).
    Report(report::ReportArgs),
    /// One packet through a node's netfilter: every reachable endpoint with its probability.
    Trace(trace::TraceArgs),
    /// The kube-proxy service map of an iptables-save file.
    Rules(rules::RulesArgs),
    /// The terminal UI: every request's journey, connections, rules, nodes/pods, what-if, replay.
    Tui(tui::TuiArgs),
    /// The TUI with a guided tour open: the embedded walkthrough's (`tour 02` starts at that
    /// recording's first step), a folder's tour.toml, or --tour FILE.
    Tour(tui::TuiArgs),
}

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => {
            // The TUI (no inputs: the embedded walkthrough with its tour open); without a
            // terminal, the report of the same inputs.
            use std::io::IsTerminal as _;
            let top = cli.top;
            let embedded = top.inputs.is_empty()
                && top.captures.is_empty()
                && top.rules.is_empty()
                && top.clusters.is_empty()
                && top.snapshot.is_none();
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                tui::run(top, embedded)
            } else {
                let args = report::ReportArgs {
                    inputs: top.inputs,
                    captures: top.captures,
                    rules: top.rules,
                    clusters: top.clusters,
                    seed: top.seed,
                    ..Default::default()
                };
                report::run(
                    &args,
                    &mut std::io::stdout().lock(),
                    &mut std::io::stderr().lock(),
                )
            }
        }
        Some(Command::Report(args)) => report::run(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
        Some(Command::Trace(args)) => trace::run(args),
        Some(Command::Rules(args)) => rules::run(args),
        Some(Command::Tui(args)) => tui::run(args, false),
        Some(Command::Tour(args)) => tui::run(args, true),
    }
}
