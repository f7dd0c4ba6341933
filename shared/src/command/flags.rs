//! A flag scanner with kubectl's (pflag's) syntax and kubeline's policy.
//!
//! Every argument is classified exactly once: as a positional argument, as a flag from the
//! command's allowlist (with its value), or as a refusal. Values are taken verbatim and never
//! inspected for flag-like text, so `-n credit-service` or `-l app=cluster-autoscaler` can never
//! trip the policy, and a dangerous flag cannot hide inside a value.
//!
//! Accepted forms, as kubectl accepts them: `--flag=value`, `--flag value`, `-n value`, `-nvalue`,
//! `-n=value`, bundled boolean shorthands (`-A`, `-Ao wide`), `--bool`, `--bool=false`, and `--`
//! to end the flags.

use super::CommandError;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// A switch: `--show-labels`, or explicitly `--show-labels=false`.
    Bool,
    /// A flag with a value: `--namespace x`, `--namespace=x`, `-n x`, `-nx`.
    Value,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    /// Long name without dashes.
    pub long: &'static str,
    /// One-letter shorthand, if any.
    pub short: Option<char>,
    /// Whether it takes a value.
    pub arity: Arity,
}

impl FlagSpec {
    pub(crate) const fn value(long: &'static str, short: Option<char>) -> Self {
        Self {
            long,
            short,
            arity: Arity::Value,
        }
    }

    pub(crate) const fn switch(long: &'static str, short: Option<char>) -> Self {
        Self {
            long,
            short,
            arity: Arity::Bool,
        }
    }

    fn display(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}/--{}", self.long),
            None => format!("--{}", self.long),
        }
    }
}

/// A flag found in the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flag {
    /// The long name of the flag, whichever spelling was used.
    pub long: &'static str,
    /// The value; `"true"`/`"false"` for switches.
    pub value: String,
    /// The argument as written, for error messages.
    pub raw: String,
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub flags: Vec<Flag>,
    pub positionals: Vec<String>,
}

impl Scanned {
    /// The last value given for a flag (kubectl lets a later flag win).
    pub(crate) fn last(&self, long: &str) -> Option<&Flag> {
        self.flags.iter().rev().find(|f| f.long == long)
    }

    /// Every value given for a flag, in order.
    pub(crate) fn all<'a>(&'a self, long: &'a str) -> impl Iterator<Item = &'a Flag> + 'a {
        self.flags.iter().filter(move |f| f.long == long)
    }

    /// A switch's final state.
    pub(crate) fn switch(&self, long: &str) -> Result<bool, CommandError> {
        match self.last(long) {
            None => Ok(false),
            Some(f) => parse_bool(&f.value).ok_or_else(|| {
                CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!(
                        "invalid value {:?} for `--{long}`: use `--{long}`, `--{long}=true` or `--{long}=false`",
                        f.value
                    ),
                )
            }),
        }
    }
}

/// pflag's boolean syntax (Go's `strconv.ParseBool`).
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

// === policy ===

/// Why a flag is never accepted, whatever the command. `None` if it is not a forbidden flag.
fn forbidden_long(name: &str) -> Option<&'static str> {
    const CREDENTIALS: &str = "the agent's connection to its API server and its credentials are \
         fixed by the agent and cannot be set or overridden by a command";
    const IMPERSONATION: &str = "impersonation is not allowed: kubeline runs every command with the \
         agent's own read-only identity";
    const FILES: &str = "reading files, directories or URLs is not allowed on the agent; name the \
         resources as arguments instead";
    Some(match name {
        "raw" => {
            "`--raw` sends an arbitrary request to the API server, outside kubeline's command model \
             and policy; use a supported command instead"
        }
        "as" | "as-group" | "as-uid" | "as-user-extra" => IMPERSONATION,
        "kubeconfig"
        | "context"
        | "cluster"
        | "user"
        | "token"
        | "server"
        | "username"
        | "password"
        | "insecure-skip-tls-verify"
        | "certificate-authority"
        | "tls-server-name"
        | "disable-compression"
        | "cache-dir" => CREDENTIALS,
        n if n.starts_with("client-") => CREDENTIALS,
        "filename" | "kustomize" | "recursive" => FILES,
        "template" => {
            "templates are not allowed: Go templates run arbitrary template code on the agent; use \
             `-o json`, `-o yaml`, `-o wide` or `-o name`"
        }
        "profile" | "profile-output" | "log-file" | "log-dir" => {
            "profiling and log files would write files on the agent"
        }
        _ => return None,
    })
}

/// Shorthands that stand for forbidden long flags.
fn forbidden_short(c: char) -> Option<&'static str> {
    match c {
        's' => Some("server"),
        'f' => Some("filename"),
        'k' => Some("kustomize"),
        'R' => Some("recursive"),
        _ => None,
    }
}

fn forbidden(arg: &str, name: &str) -> CommandError {
    let why = forbidden_long(name).unwrap_or("it is not allowed");
    CommandError::new(
        "forbidden_flag",
        Some(arg.to_string()),
        format!("flag `{arg}` is forbidden: {why}; kubeline is read-only"),
    )
}

/// Flags that kubectl has but kubeline does not support yet, with a reason worth telling.
fn not_supported_reason(name: &str) -> Option<&'static str> {
    Some(match name {
        // `w` is `-w`, kubectl's shorthand of `--watch`.
        "watch" | "w" | "watch-only" | "output-watch-events" => {
            "watching is not supported by one execute, which returns one result; run the \
             command as a stream with `GET /debug/stream`"
        }
        "sort-by" => "sorting is not supported yet",
        "subresource" => "subresources are not supported yet",
        "server-print" => {
            "client-side printing is not supported; kubeline always prints the \
             server's table"
        }
        "client" => "kubeline only reports the server side",
        "request-timeout" => "the timeout is set with the request's `timeout` field",
        "v" | "vmodule" => "kubectl's verbose logging does not apply to kubeline",
        _ => return None,
    })
}

fn unknown(arg: &str, name: &str, command: &str, specs: &[FlagSpec]) -> CommandError {
    let allowed = if specs.is_empty() {
        "none".to_string()
    } else {
        specs
            .iter()
            .map(FlagSpec::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let message = match not_supported_reason(name) {
        Some(why) => format!("flag `{arg}` is not supported for `{command}`: {why}"),
        None => format!("unknown flag `{arg}` for `{command}`; allowed flags: {allowed}"),
    };
    CommandError::new("unknown_flag", Some(arg.to_string()), message)
}

fn missing_value(arg: &str, spec: &FlagSpec) -> CommandError {
    CommandError::new(
        "missing_flag_value",
        Some(arg.to_string()),
        format!("flag `{}` needs a value", spec.display()),
    )
}

/// A value that is really the next flag (`-n -A`), which kubectl would silently swallow as a
/// namespace. kubeline refuses it instead, so a typo never turns into a surprising query.
fn looks_like_flag(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('-') && chars.next().is_some_and(|c| !c.is_ascii_digit())
}

// === scanner ===

/// Splits `args` into allowlisted flags and positional arguments, or refuses the first argument
/// that breaks the policy.
pub(crate) fn scan(
    command: &str,
    args: &[String],
    specs: &[FlagSpec],
) -> Result<Scanned, CommandError> {
    let mut out = Scanned::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.positionals.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if forbidden_long(name).is_some() {
                return Err(forbidden(arg, name));
            }
            let Some(spec) = specs.iter().find(|s| s.long == name) else {
                return Err(unknown(arg, name, command, specs));
            };
            let value = match (spec.arity, inline) {
                (_, Some(v)) => v.to_string(),
                (Arity::Bool, None) => "true".to_string(),
                (Arity::Value, None) => match args.get(i) {
                    Some(v) if !looks_like_flag(v) => {
                        i += 1;
                        v.clone()
                    }
                    _ => return Err(missing_value(arg, spec)),
                },
            };
            if spec.arity == Arity::Value && value.is_empty() && inline.is_none() {
                return Err(missing_value(arg, spec));
            }
            out.flags.push(Flag {
                long: spec.long,
                value,
                raw: arg.clone(),
            });
            continue;
        }
        if let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            // A bundle of shorthands: booleans may be combined; the first shorthand that takes a
            // value takes the rest of the bundle (after an optional '='), or the next argument.
            let chars: Vec<(usize, char)> = body.char_indices().collect();
            let mut k = 0;
            while k < chars.len() {
                let (pos, c) = chars[k];
                // A command that names a shorthand itself means its own flag by it (`logs -f`
                // is `--follow` in a stream); otherwise a forbidden shorthand is refused.
                let spec = specs.iter().find(|s| s.short == Some(c));
                if spec.is_none()
                    && let Some(long) = forbidden_short(c)
                {
                    return Err(forbidden(&format!("-{c}"), long));
                }
                let Some(spec) = spec else {
                    let shown = format!("-{c}");
                    return Err(unknown(&shown, &c.to_string(), command, specs));
                };
                let rest = &body[pos + c.len_utf8()..];
                match spec.arity {
                    Arity::Bool => {
                        let (value, done) = match rest.strip_prefix('=') {
                            Some(v) => (v.to_string(), true),
                            None => ("true".to_string(), false),
                        };
                        out.flags.push(Flag {
                            long: spec.long,
                            value,
                            raw: arg.clone(),
                        });
                        if done {
                            break;
                        }
                        k += 1;
                    }
                    Arity::Value => {
                        let value = if !rest.is_empty() {
                            rest.strip_prefix('=').unwrap_or(rest).to_string()
                        } else {
                            match args.get(i) {
                                Some(v) if !looks_like_flag(v) => {
                                    i += 1;
                                    v.clone()
                                }
                                _ => return Err(missing_value(arg, spec)),
                            }
                        };
                        out.flags.push(Flag {
                            long: spec.long,
                            value,
                            raw: arg.clone(),
                        });
                        break;
                    }
                }
            }
            continue;
        }
        out.positionals.push(arg.clone());
    }
    Ok(out)
}
