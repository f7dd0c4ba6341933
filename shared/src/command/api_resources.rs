//! `api-resources`: the resource types the server serves, as kubectl prints them
//! (kubectl `pkg/cmd/apiresources`): one row per resource in each group's preferred version,
//! sorted by group then name (or by `--sort-by=name|kind`), filtered by `--namespaced`,
//! `--api-group`, `--verbs` and `--categories`; printed as a table (`-o wide`), names
//! (`-o name`) or the flattened `APIResourceList` (`-o json|yaml|kyaml`).

use super::flags::{self, FlagSpec, Scanned};
use super::{CommandError, no_positionals};

const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("output", Some('o')),
    FlagSpec::switch("no-headers", None),
    FlagSpec::switch("namespaced", None),
    FlagSpec::value("api-group", None),
    FlagSpec::value("verbs", None),
    FlagSpec::value("categories", None),
    FlagSpec::value("sort-by", None),
    FlagSpec::switch("cached", None),
];

/// `api-resources`: the resource types the server serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiResources {
    /// `-o/--output`.
    pub output: ApiResourcesOutput,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--namespaced=true|false`; `None` when not given (every resource is listed).
    pub namespaced: Option<bool>,
    /// `--api-group`; `Some("")` is the core group.
    pub api_group: Option<String>,
    /// `--verbs` (repeatable, comma-separated): only resources supporting all of them.
    pub verbs: Vec<String>,
    /// `--categories` (repeatable, comma-separated): only resources in all of them.
    pub categories: Vec<String>,
    /// `--sort-by`.
    pub sort_by: ApiResourcesSort,
}

/// The `-o` formats of `api-resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiResourcesOutput {
    /// NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND.
    #[default]
    Table,
    /// The table plus VERBS and CATEGORIES.
    Wide,
    /// `resource.group`, one per line.
    Name,
    /// The flattened `APIResourceList`, as kubectl's JSON printer prints it.
    Json,
    /// The flattened `APIResourceList` as YAML.
    Yaml,
    /// The flattened `APIResourceList` as KYAML (kubectl 1.34+).
    Kyaml,
}

/// `--sort-by` of `api-resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiResourcesSort {
    /// By group, then name (kubectl's default).
    #[default]
    Group,
    /// `--sort-by=name`.
    Name,
    /// `--sort-by=kind`.
    Kind,
}

/// Parses the arguments of `api-resources`.
pub(crate) fn parse(args: &[String]) -> Result<ApiResources, CommandError> {
    let scanned = flags::scan("api-resources", args, FLAGS)?;
    no_positionals("api-resources", &scanned.positionals)?;
    let output = match scanned.last("output") {
        None => ApiResourcesOutput::Table,
        Some(f) => match f.value.as_str() {
            "" => ApiResourcesOutput::Table,
            "wide" => ApiResourcesOutput::Wide,
            "name" => ApiResourcesOutput::Name,
            "json" => ApiResourcesOutput::Json,
            "yaml" => ApiResourcesOutput::Yaml,
            "kyaml" => ApiResourcesOutput::Kyaml,
            other => {
                return Err(CommandError::new(
                    "unsupported_output",
                    Some(f.raw.clone()),
                    format!(
                        "unsupported output format {other:?} for `api-resources`; supported: \
                         wide, name, json, yaml, kyaml"
                    ),
                ));
            }
        },
    };
    // A bool flag whose default is true; only whether it was given, and how, matters.
    let namespaced = match scanned.last("namespaced") {
        None => None,
        Some(_) => Some(scanned.switch("namespaced")?),
    };
    let api_group = match scanned.last("api-group") {
        None => None,
        Some(f) if plain(&f.value, true) => Some(f.value.clone()),
        Some(f) => return Err(invalid(&f.raw, "--api-group", &f.value)),
    };
    let sort_by = match scanned.last("sort-by") {
        None => ApiResourcesSort::Group,
        Some(f) => match f.value.as_str() {
            "" => ApiResourcesSort::Group,
            "name" => ApiResourcesSort::Name,
            "kind" => ApiResourcesSort::Kind,
            _ => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "--sort-by accepts only name or kind".to_string(),
                ));
            }
        },
    };
    Ok(ApiResources {
        output,
        no_headers: scanned.switch("no-headers")?,
        namespaced,
        api_group,
        verbs: list(&scanned, "verbs")?,
        categories: list(&scanned, "categories")?,
        sort_by,
    })
}

/// A pflag string slice: every value split on commas.
fn list(scanned: &Scanned, long: &str) -> Result<Vec<String>, CommandError> {
    let mut out = Vec::new();
    for f in scanned.all(long) {
        if f.value.is_empty() {
            continue;
        }
        for v in f.value.split(',') {
            if !plain(v, false) {
                return Err(invalid(&f.raw, &format!("--{long}"), &f.value));
            }
            out.push(v.to_string());
        }
    }
    Ok(out)
}

/// Group names, verbs and categories: printable ASCII words.
fn plain(s: &str, allow_empty: bool) -> bool {
    (allow_empty || !s.is_empty())
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._*".contains(&b))
}

fn invalid(raw: &str, flag: &str, value: &str) -> CommandError {
    CommandError::new(
        "invalid_argument",
        Some(raw.to_string()),
        format!("invalid value {value:?} for `{flag}`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse(&[]), Ok(ApiResources::default()));
        let a = parse(&args(
            "-o wide --namespaced=false --api-group= --verbs=get,list --verbs watch \
             --sort-by=kind --no-headers --categories all",
        ))
        .unwrap();
        assert_eq!(a.output, ApiResourcesOutput::Wide);
        assert_eq!(a.namespaced, Some(false));
        assert_eq!(a.api_group.as_deref(), Some(""));
        assert_eq!(a.verbs, ["get", "list", "watch"]);
        assert_eq!(a.categories, ["all"]);
        assert_eq!(a.sort_by, ApiResourcesSort::Kind);
        assert!(a.no_headers);
        assert_eq!(
            parse(&args("-o name")).unwrap().output,
            ApiResourcesOutput::Name
        );
        assert_eq!(
            parse(&args("-o json")).unwrap().output,
            ApiResourcesOutput::Json
        );
        assert_eq!(
            parse(&args("-oyaml")).unwrap().output,
            ApiResourcesOutput::Yaml
        );
    }

    #[test]
    fn refusals() {
        for (input, code) in [
            ("pods", "unexpected_argument"),
            ("-o jsonpath={.x}", "unsupported_output"),
            ("--sort-by=group", "invalid_argument"),
            ("--namespaced=maybe", "invalid_argument"),
            ("--api-group=a/b", "invalid_argument"),
            ("--raw=/x", "forbidden_flag"),
            ("-A", "unknown_flag"),
        ] {
            assert_eq!(parse(&args(input)).unwrap_err().code, code, "{input}");
        }
    }
}
