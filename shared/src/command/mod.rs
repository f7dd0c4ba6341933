//! The typed command model: what a kubectl-style request means, decided once.
//!
//! [`parse`] turns a `command_type` and its `args` into a [`Command`] or a [`CommandError`] that
//! names the offending argument. The broker parses before enqueueing and the agent parses again
//! before running, with this same code, so nothing is ever matched as a substring.

use std::fmt;

/// A command the agent knows how to run, with its arguments parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `version`
    Version,
}

/// Why a request was refused. Turned into a 400 `invalid_request` by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// Machine-readable reason, for `details.code`.
    pub code: &'static str,
    /// The argument that was refused, for `details.argument`.
    pub argument: Option<String>,
    /// What was wrong and what to do instead.
    pub message: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// Parses a command type and its arguments.
pub fn parse(command_type: &str, args: &[String]) -> Result<Command, CommandError> {
    match command_type {
        "version" if args.is_empty() => Ok(Command::Version),
        other => Err(CommandError {
            code: "unsupported_command",
            argument: None,
            message: format!("command type `{other}` is not supported"),
        }),
    }
}
