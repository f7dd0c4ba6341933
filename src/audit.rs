//! `kubeline audit verify`: reads a broker's audit log through `GET /audit` and checks its hash
//! chains here, with the same verifier the broker's `GET /audit/verify` uses, so that the check
//! does not depend on the broker's own verdict.
//!
//! The broker and key are found as for every client command (`config::resolve`: flags, then
//! `KUBELINE_BROKER_URL` / `KUBELINE_API_KEY`, then the file `kubeline login` wrote), and the
//! log is read through the one REST client (`client.rs`).
//!
//! Exit status: 0 when nothing is wrong, 1 when the verifier found problems, 2 for a usage
//! error or when the log cannot be read (broker unreachable, key refused).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use kubeline_broker::audit::{StoredRecord, Verifier};
use kubeline_shared::audit::VerifyReport;

use crate::client::Client;
use crate::config::{self, ClientArgs};

/// Largest page `GET /audit` serves.
const MAX_PAGE: usize = 1000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chains of a broker's audit log: read it through GET /audit (admin key)
    /// and check every hash, link and seq locally. Exit 0 when intact, 1 when problems were
    /// found, 2 when the log cannot be read.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The broker and an API key with admin scope.
    #[command(flatten)]
    client: ClientArgs,

    /// Most records to read, newest first; older ones are not checked (their chains then show
    /// as starting after seq 0).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_records: u64,

    /// Records per request (1 to 1000).
    #[arg(long, default_value_t = MAX_PAGE as u64, value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE as u64))]
    page_size: u64,

    /// Timeout of each request, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,

    /// Print the report as JSON (the body of GET /audit/verify) instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Runs an `audit` subcommand; never fails, the exit status says how it went.
pub async fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
    }
}

async fn verify(args: VerifyArgs) -> ExitCode {
    let client = match config::resolve(&args.client).and_then(|target| target.client()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("kubeline audit verify: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match read_and_verify(&client, &args).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("kubeline audit verify: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        );
    } else {
        print!("{}", summary(client.base(), &report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Pages through `GET /audit` (newest first), keeping what verification needs of each record,
/// then verifies oldest first.
async fn read_and_verify(
    client: &Client,
    args: &VerifyArgs,
) -> Result<VerifyReport, crate::client::ClientError> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let max = usize::try_from(args.max_records).unwrap_or(usize::MAX);
    let mut checked = Vec::new();
    let mut cursor: Option<String> = None;
    let complete = loop {
        let limit = (args.page_size as usize).min(max - checked.len());
        let page = client
            .audit_page(limit, cursor.take().as_deref(), timeout)
            .await?;
        for value in page.records.into_iter().take(max - checked.len()) {
            checked.push(
                StoredRecord {
                    cursor: None,
                    value,
                }
                .check(),
            );
        }
        match page.next_cursor {
            None => break true,
            Some(_) if checked.len() >= max => break false,
            Some(next) => cursor = Some(next),
        }
    };
    let mut verifier = Verifier::new();
    for record in checked.into_iter().rev() {
        verifier.push_checked(record);
    }
    Ok(verifier.finish(complete))
}

/// The report for people.
fn summary(broker: &str, report: &VerifyReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let reach = if report.complete {
        "back to the oldest stored record"
    } else {
        "the newest only (--max-records)"
    };
    let _ = writeln!(
        out,
        "Audit log of {broker}: {} records read ({reach}), {} chain{}",
        report.scanned,
        report.chains.len(),
        if report.chains.len() == 1 { "" } else { "s" }
    );
    for chain in &report.chains {
        let _ = write!(
            out,
            "  {}  seq {} to {}, {} records",
            chain.chain, chain.first_seq, chain.last_seq, chain.records
        );
        if chain.trimmed {
            let _ = write!(
                out,
                " (starts after seq 0: older records trimmed or not read, not checked)"
            );
        }
        out.push('\n');
    }
    if report.ok {
        let _ = writeln!(
            out,
            "OK: every hash, link and seq checks out; nothing edited, missing or out of order."
        );
    } else {
        let n = report.problems.len();
        let _ = writeln!(out, "FAILED: {n} problem{}", if n == 1 { "" } else { "s" });
        for p in &report.problems {
            let chain = p.chain.as_deref().unwrap_or("?");
            let kind = serde_json::to_value(p.problem).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {chain}: {}: {}",
                kind.as_str().unwrap_or("problem"),
                p.message
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kubeline_shared::audit::{ChainProblem, ChainSummary, ProblemKind};

    use super::*;

    #[test]
    fn the_summary_names_chains_and_problems() {
        let report = VerifyReport {
            ok: false,
            scanned: 12,
            complete: true,
            chains: vec![ChainSummary {
                chain: "broker_a".into(),
                first_seq: 3,
                last_seq: 14,
                records: 12,
                trimmed: true,
            }],
            problems: vec![ChainProblem {
                chain: Some("broker_a".into()),
                seq: Some(7),
                problem: ProblemKind::Gap,
                message: "seq 7 is missing (the chain goes from 6 to 8)".into(),
                cursor: None,
            }],
        };
        let text = summary("http://b", &report);
        assert!(text.contains("12 records read (back to the oldest stored record), 1 chain\n"));
        assert!(text.contains("broker_a  seq 3 to 14, 12 records (starts after seq 0"));
        assert!(text.contains("FAILED: 1 problem\n  broker_a: gap: seq 7 is missing"));
    }
}
