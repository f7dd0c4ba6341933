//! `events`: events as `kubectl events` lists them (oldest first), not as `get events` does.
//!
//! Flags follow kubectl (`pkg/cmd/events`): `-n`, `-A`, `--for TYPE/NAME`, `--types`,
//! `--no-headers`, `-o json|yaml|name`. `-w/--watch` is accepted only in a stream
//! ([`super::parse_stream`]): one execute returns one result.

use super::flags::{self, FlagSpec};
use super::logs::{object_ref, refuse_streaming};
use super::{CommandError, GetOutput, Mode, ResourceName, get, namespace_value, no_positionals};

/// The flags `events` accepts.
const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::switch("all-namespaces", Some('A')),
    FlagSpec::value("for", None),
    FlagSpec::value("types", None),
    FlagSpec::switch("no-headers", None),
    FlagSpec::value("output", Some('o')),
    // Outside a stream, accepted so that `--watch=false` works as in kubectl; watching itself
    // is refused there.
    FlagSpec::switch("watch", Some('w')),
];

/// A parsed `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// `-n/--namespace`; `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-A/--all-namespaces`.
    pub all_namespaces: bool,
    /// `--for TYPE/NAME`: only events about this object. The type is resolved by the agent.
    pub for_object: Option<ResourceName>,
    /// `--types`: only events of these types (`Normal`, `Warning`, any case); empty means all.
    pub types: Vec<String>,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `-o/--output`: [`GetOutput::Table`] (kubectl's event table), [`GetOutput::Json`] and
    /// [`GetOutput::Yaml`] (the `EventList`, as kubectl prints a typed list) or
    /// [`GetOutput::Name`] (`event/NAME`); no other variant is produced.
    pub output: GetOutput,
    /// `-w/--watch` (streams only): after the events so far, print each new or changed event.
    pub watch: bool,
}

/// Parses the arguments of `events`.
pub(crate) fn parse(args: &[String], mode: Mode) -> Result<Events, CommandError> {
    let scanned = flags::scan("events", args, FLAGS)?;
    let watch = scanned.switch("watch")?;
    if watch && mode == Mode::Once {
        return Err(refuse_streaming(
            scanned.last("watch").map(|f| f.raw.clone()),
            "events",
        ));
    }
    no_positionals("events", &scanned.positionals)?;
    let for_object = match scanned.last("for") {
        None => None,
        Some(f) if f.value.is_empty() => None,
        Some(f) if !f.value.contains('/') => {
            return Err(CommandError::new(
                "invalid_argument",
                Some(f.raw.clone()),
                "--for must be in resource/name form".to_string(),
            ));
        }
        Some(f) => Some(object_ref(&f.value, "")?),
    };
    let mut types: Vec<String> = Vec::new();
    for f in scanned.all("types") {
        for t in f.value.split(',') {
            if !t.eq_ignore_ascii_case("Normal") && !t.eq_ignore_ascii_case("Warning") {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "valid --types are Normal or Warning".to_string(),
                ));
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
    }
    types.sort();
    let output = get::output_among(
        &scanned,
        "events",
        &[
            (GetOutput::Json, "json"),
            (GetOutput::Yaml, "yaml"),
            (GetOutput::Name, "name"),
        ],
    )?;
    Ok(Events {
        namespace: scanned.last("namespace").map(namespace_value).transpose()?,
        all_namespaces: scanned.switch("all-namespaces")?,
        for_object,
        types,
        no_headers: scanned.switch("no-headers")?,
        output,
        watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn parse_once(args: &[String]) -> Result<Events, CommandError> {
        parse(args, Mode::Once)
    }

    #[test]
    fn accepted() {
        let e = parse_once(&args(
            "-n credit-service --for pod/credit-scorer --types=warning",
        ))
        .unwrap();
        assert_eq!(e.namespace.as_deref(), Some("credit-service"));
        assert_eq!(
            e.for_object,
            Some(ResourceName {
                resource: "pod".into(),
                name: "credit-scorer".into()
            })
        );
        assert_eq!(e.types, vec!["warning".to_string()]);
        let e = parse_once(&args(
            "-A --types Warning,Normal --types=Normal --no-headers -w=false",
        ))
        .unwrap();
        assert!(e.all_namespaces && e.no_headers);
        assert_eq!(e.types, vec!["Normal".to_string(), "Warning".to_string()]);
    }

    #[test]
    fn refused() {
        for s in ["-w", "--watch", "-Aw"] {
            let e = parse_once(&args(s)).unwrap_err();
            assert_eq!(e.code, "unknown_flag", "{s}");
            assert!(e.message.contains("watching is not supported"), "{s}");
        }
        let e = parse_once(&args("--for pod")).unwrap_err();
        assert_eq!(e.message, "--for must be in resource/name form");
        let e = parse_once(&args("--types=Bad")).unwrap_err();
        assert_eq!(e.message, "valid --types are Normal or Warning");
        assert_eq!(
            parse_once(&args("pods")).unwrap_err().code,
            "unexpected_argument"
        );
        assert_eq!(
            parse_once(&args("--for a/b/c")).unwrap_err().code,
            "invalid_argument"
        );
        assert_eq!(
            parse_once(&args("-o wide")).unwrap_err().code,
            "unsupported_output"
        );
        assert_eq!(
            parse_once(&args("-o jsonpath={.x}")).unwrap_err().code,
            "unsupported_output"
        );
    }

    #[test]
    fn outputs() {
        assert_eq!(parse_once(&args("")).unwrap().output, GetOutput::Table);
        assert_eq!(
            parse_once(&args("-o json")).unwrap().output,
            GetOutput::Json
        );
        assert_eq!(parse_once(&args("-oyaml")).unwrap().output, GetOutput::Yaml);
        assert_eq!(
            parse_once(&args("--output=name")).unwrap().output,
            GetOutput::Name
        );
    }
}
