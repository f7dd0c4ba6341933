//! Differential suites: run a command through kubeline and through the test bed's real kubectl
//! of the same version, and compare what they print. This module is the harness; its children
//! hold the rows (`get`, `describe`, `meta`, `ops`, `errors`, `usage`).
//!
//! The only normalisation: durations (AGE cells, `(5m ago)`) and RFC 3339 timestamps are masked
//! with placeholders of the same length (so column layout is still compared byte for byte), and
//! for `version` the client-side lines kubeline does not print are removed from kubectl's output.
//! Because ages tick, a row that differs is retried a few times before it counts as failed.
#![allow(dead_code)]

mod describe;
mod errors;
mod get;
mod meta;
mod ops;
mod usage;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use kubeline_agent::exec::{Executor, Outcome};
use kubeline_shared::command;

use crate::support::bed::Bed;

/// Rows of one suite run at once (each runs kubectl and kubeline side by side). The suites
/// run beside each other and beside the other tests, on two cores shared with the bed.
const ROWS_AT_ONCE: usize = 6;

/// How kubectl's output is brought to what kubeline means to print.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Mask durations and timestamps.
    Times,
    /// Also drop kubectl's `Client Version`/`Kustomize Version` parts.
    Version,
    /// Also mask `top`'s usage figures (`180Mi`, `2%`; CPU `121m` is masked as a duration):
    /// kwok emulates usage with jitter, so they change between two runs. Same length, so the
    /// layout is still compared.
    Top,
}

pub struct Row {
    pub command: &'static str,
    pub args: &'static [&'static str],
    pub norm: Norm,
}

pub const fn row(command: &'static str, args: &'static [&'static str]) -> Row {
    Row {
        command,
        args,
        norm: Norm::Times,
    }
}

/// A `top` row: usage figures are masked (see [`Norm::Top`]).
pub const fn top_row(args: &'static [&'static str]) -> Row {
    Row {
        command: "top",
        args,
        norm: Norm::Top,
    }
}

/// What one side printed.
#[derive(Debug, PartialEq, Eq)]
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

pub async fn run_kubectl(kubectl: &str, kubeconfig: &str, row: &Row) -> Result<Printed> {
    let out = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg(row.command)
        .args(row.args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .with_context(|| format!("running {kubectl}"))?;
    Ok(Printed {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit_code: out.status.code().unwrap_or(-1),
    })
}

pub async fn run_kubeline(executor: &Executor, row: &Row) -> Printed {
    let args: Vec<String> = row.args.iter().map(|s| s.to_string()).collect();
    match command::parse(row.command, &args) {
        Ok(cmd) => {
            let Outcome {
                output,
                error,
                exit_code,
            } = executor.run(&cmd).await;
            Printed {
                stdout: output,
                stderr: error.unwrap_or_default(),
                exit_code,
            }
        }
        // A kubectl usage error is answered as kubectl answers it (the broker does the same).
        Err(e) => match e.kubectl_error {
            Some(stderr) => Printed {
                stdout: String::new(),
                stderr,
                exit_code: 1,
            },
            None => Printed {
                stdout: String::new(),
                stderr: format!("kubeline refused the command ({}): {}\n", e.code, e.message),
                exit_code: -2,
            },
        },
    }
}

// === normalisation ===

/// Whether `t` is a kubectl duration: `5s`, `3m2s`, `10m`, `3h2m`, `2d2h`, `400d`, `3y2d`.
fn is_duration(t: &str) -> bool {
    let mut units = 0;
    let mut digits = 0;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if "smhdy".contains(c) && digits > 0 {
            units += 1;
            digits = 0;
        } else {
            return false;
        }
    }
    digits == 0 && (1..=2).contains(&units)
}

/// Whether `t` starts an RFC 3339 UTC timestamp (`2026-11-23T00:06:12Z`, with optional
/// fraction); returns its length.
fn timestamp_len(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 1 {
        return None;
    }
    for (i, s) in shape.iter().enumerate() {
        let ok = if *s == b'd' {
            b[i].is_ascii_digit()
        } else {
            b[i] == *s
        };
        if !ok {
            return None;
        }
    }
    let mut i = shape.len();
    if b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    (i < b.len() && b[i] == b'Z').then_some(i + 1)
}

/// Masks durations and timestamps with same-length placeholders.
pub fn mask_times(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(n) = timestamp_len(rest) {
            out.push_str(&"T".repeat(n));
            rest = &rest[n..];
            continue;
        }
        let token_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if token_len == 0 {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = &rest[..token_len];
        let starts_token = !out
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if starts_token && is_duration(token) {
            out.push_str(&"~".repeat(token.len()));
        } else {
            out.push_str(token);
        }
        rest = &rest[token_len..];
    }
    out
}

/// Drops kubectl's client-side version parts from text, JSON and YAML output.
fn drop_client_version(s: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in s.split_inclusive('\n') {
        let t = line.trim_end();
        if t.starts_with("Client Version:") || t.starts_with("Kustomize Version:") {
            continue;
        }
        if t == "  \"clientVersion\": {" || t == "clientVersion:" {
            skipping = true;
        }
        if skipping {
            if t.starts_with("  \"kustomizeVersion\"") || t.starts_with("kustomizeVersion:") {
                skipping = false;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

pub fn normalise(p: &Printed, norm: Norm, kubectl_side: bool) -> Printed {
    let f = |s: &str| {
        let s = if norm == Norm::Version && kubectl_side {
            drop_client_version(s)
        } else {
            s.to_string()
        };
        let s = mask_klog_headers(&mask_times(&s));
        if norm == Norm::Top { mask_usage(&s) } else { s }
    };
    Printed {
        stdout: f(&p.stdout),
        stderr: f(&p.stderr),
        exit_code: p.exit_code,
    }
}

/// Masks the date, time and thread id of klog headers (`F1201 04:48:40.024837   16106 `, what
/// kubectl prints before a fatal error) with `#`, keeping their layout.
fn mask_klog_headers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        let b = line.as_bytes();
        let shape = b"Xdddd dd:dd:dd.dddddd ";
        let header = b.len() > shape.len()
            && b"IWEF".contains(&b[0])
            && shape[1..].iter().zip(&b[1..]).all(|(s, c)| match s {
                b'd' => c.is_ascii_digit(),
                s => s == c,
            });
        if !header {
            out.push_str(line);
            continue;
        }
        // Then the thread id, right-aligned in seven columns, and a space: the whole field is
        // masked, since two processes' ids may differ in their number of digits.
        let mut end = shape.len();
        while end < b.len() && b[end] == b' ' {
            end += 1;
        }
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        out.push(line.chars().next().unwrap_or_default());
        for c in line[1..shape.len()].chars() {
            out.push(if c.is_ascii_digit() { '#' } else { c });
        }
        out.push_str(&"#".repeat(end - shape.len()));
        out.push_str(&line[end..]);
    }
    out
}

#[test]
fn klog_headers_are_masked() {
    assert_eq!(
        mask_klog_headers("F1201 04:48:40.024837   16106 sorter.go:375] Field x\nok 12\n"),
        "F#### ##:##:##.###### ####### sorter.go:375] Field x\nok 12\n"
    );
    // Ids of different lengths, right-aligned in the same seven columns, mask alike.
    assert_eq!(
        mask_klog_headers("F1201 04:48:40.024837    1234 sorter.go:375] x\n"),
        mask_klog_headers("F1201 04:48:40.024837     123 sorter.go:375] x\n")
    );
}

/// Masks `top`'s memory and percentage figures (`432Mi`, `4%`) with same-length placeholders.
fn mask_usage(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if starts {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let unit = if s[j..].starts_with("Mi") {
                2
            } else if s[j..].starts_with('%') {
                1
            } else {
                0
            };
            if unit > 0 {
                out.push_str(&"#".repeat(j + unit - i));
                i = j + unit;
                continue;
            }
            out.push_str(&s[i..j]);
            i = j;
            continue;
        }
        let c = s[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[test]
fn usage_masking_keeps_layout() {
    assert_eq!(
        mask_usage("kwok-node-0   ~~~~   2%       310Mi   0%   \n"),
        "kwok-node-0   ~~~~   ##       #####   ##   \n"
    );
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (la, lb)) in a.lines().zip(b.lines()).enumerate() {
        if la != lb {
            return format!(
                "line {}:\n      kubectl:  {la:?}\n      kubeline: {lb:?}",
                i + 1
            );
        }
    }
    format!(
        "line counts {} (kubectl) vs {} (kubeline); trailing newline {} vs {}",
        a.lines().count(),
        b.lines().count(),
        a.ends_with('\n'),
        b.ends_with('\n')
    )
}

pub fn describe_difference(k: &Printed, ours: &Printed) -> String {
    let mut why = String::new();
    if k.exit_code != ours.exit_code {
        let _ = write!(
            why,
            "exit code {} (kubectl) vs {} (kubeline); ",
            k.exit_code, ours.exit_code
        );
    }
    if k.stdout != ours.stdout {
        let _ = write!(
            why,
            "stdout differs at {}; ",
            first_difference(&k.stdout, &ours.stdout)
        );
    }
    if k.stderr != ours.stderr {
        let _ = write!(
            why,
            "stderr differs at {}; ",
            first_difference(&k.stderr, &ours.stderr)
        );
    }
    why
}

#[test]
fn masking_keeps_layout() {
    assert_eq!(
        mask_times("web   5m46s   12 (15s ago)"),
        "web   ~~~~~   12 (~~~ ago)"
    );
    assert_eq!(
        mask_times("created 2026-11-23T00:06:12Z."),
        "created TTTTTTTTTTTTTTTTTTTT."
    );
    assert_eq!(
        mask_times("kwok-node-0 v1.36.3 80/TCP 2d2h 100m"),
        "kwok-node-0 v1.36.3 80/TCP ~~~~ ~~~~"
    );
    assert_eq!(
        drop_client_version("Client Version: v1\nKustomize Version: v5\nServer Version: v1\n"),
        "Server Version: v1\n"
    );
}

/// Runs every row through kubeline and kubectl (as the read-only identity), several rows at
/// once ([`ROWS_AT_ONCE`]), and fails with a report (in the rows' order) of every row that
/// differs.
pub async fn check_rows(rows: &[Row]) -> Result<()> {
    let bed = Bed::new().await;
    let outcomes: Vec<Result<Result<usize, String>>> = futures::stream::iter(rows)
        .map(|row| check_row(&bed, row))
        .buffered(ROWS_AT_ONCE)
        .collect()
        .await;
    let mut report = String::new();
    let mut failed = 0;
    for (row, outcome) in rows.iter().zip(outcomes) {
        let line = format!("{} {}", row.command, row.args.join(" "));
        match outcome? {
            Ok(0) => {
                let _ = writeln!(report, "  pass  {line}");
            }
            Ok(n) => {
                let _ = writeln!(report, "  pass  {line}   (after {n} retries)");
            }
            Err(why) => {
                failed += 1;
                let _ = writeln!(report, "  FAIL  {line}\n        {why}");
            }
        }
    }
    eprintln!("kubectl vs kubeline, {} rows:\n{report}", rows.len());
    assert_eq!(
        failed,
        0,
        "{failed} of {} rows differ from kubectl:\n{report}",
        rows.len()
    );
    Ok(())
}

/// One row, retried while it differs (ages tick): the retries it took, or how it differs.
async fn check_row(bed: &Bed, row: &Row) -> Result<Result<usize, String>> {
    let mut outcome = Err(String::new());
    for attempt in 0..4 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let (k, ours) = tokio::join!(
            run_kubectl(&bed.kubectl, &bed.reader, row),
            run_kubeline(&bed.executor, row)
        );
        let k = normalise(&k?, row.norm, true);
        let ours = normalise(&ours, row.norm, false);
        if k == ours {
            return Ok(Ok(attempt));
        }
        outcome = Err(describe_difference(&k, &ours));
    }
    Ok(outcome)
}
