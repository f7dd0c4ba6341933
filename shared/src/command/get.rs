//! `get`: list or fetch objects.
//!
//! The arguments follow kubectl's rules (`ResourceTypeOrNameArgs` in cli-runtime): either every
//! positional is `type/name`, or the first positional is one or more comma-separated types and the
//! rest are names. `get pods,svc a b` means the pairs `pods/a pods/b svc/a svc/b`, as in kubectl.

use super::flags::{self, FlagSpec, Scanned};
use super::{CommandError, Mode, limit_exceeded, namespace_value, template_within_limits};
use crate::jsonpath;
use crate::limits::{LimitExceeded, MAX_NAMES, MAX_SELECTOR_BYTES, MAX_TYPES};

/// The flags `get` accepts.
const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::switch("all-namespaces", Some('A')),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::value("field-selector", None),
    FlagSpec::value("output", Some('o')),
    FlagSpec::switch("show-labels", None),
    FlagSpec::value("label-columns", Some('L')),
    FlagSpec::switch("no-headers", None),
    FlagSpec::switch("show-kind", None),
    FlagSpec::switch("show-managed-fields", None),
    FlagSpec::switch("ignore-not-found", None),
    FlagSpec::value("chunk-size", None),
    FlagSpec::value("limit", None),
    FlagSpec::value("sort-by", None),
    FlagSpec::switch("allow-missing-template-keys", None),
];

/// The flags `get` accepts in a stream, besides [`FLAGS`].
const WATCH_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("watch", Some('w')),
    FlagSpec::switch("watch-only", None),
    FlagSpec::switch("output-watch-events", None),
];

/// kubectl's default `--chunk-size`.
pub const DEFAULT_CHUNK_SIZE: u32 = 500;

/// A parsed `get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    /// What to fetch.
    pub targets: Targets,
    /// `-n/--namespace`; `None` means the agent's default namespace (`default`).
    pub namespace: Option<String>,
    /// `-A/--all-namespaces`; wins over `--namespace`, as in kubectl.
    pub all_namespaces: bool,
    /// `-l/--selector`, trimmed; `None` when absent or blank.
    pub label_selector: Option<String>,
    /// `--field-selector`, trimmed; `None` when absent or blank.
    pub field_selector: Option<String>,
    /// `-o/--output`.
    pub output: GetOutput,
    /// `--show-labels`: a LABELS column at the end of tables.
    pub show_labels: bool,
    /// `-L/--label-columns`: one column per label key (repeatable, comma-separated).
    pub label_columns: Vec<String>,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-kind`: `kind.group/name` in the NAME column even for a single type.
    pub show_kind: bool,
    /// `--show-managed-fields`: keep `metadata.managedFields` in json/yaml (kubectl drops them).
    pub show_managed_fields: bool,
    /// `--ignore-not-found`: a named object that does not exist is not an error.
    pub ignore_not_found: bool,
    /// `--chunk-size`: page size of list requests; 0 fetches everything in one request.
    pub chunk_size: u32,
    /// `--limit` (a kubeline extension, not a kubectl flag): at most this many objects per
    /// resource type, in one page; the agent says on stderr when more were left out.
    pub limit: Option<u32>,
    /// `--sort-by`: a JSONPath expression (`.metadata.name` or `{.metadata.name}`) the objects
    /// are sorted by; lists are then fetched in one request, as kubectl does.
    pub sort_by: Option<String>,
    /// `--allow-missing-template-keys` (default true): a missing field is not an error in
    /// `-o jsonpath` output.
    pub allow_missing_template_keys: bool,
    /// `-w/--watch` or `--watch-only` (streams only): keep printing changes.
    pub watch: Watch,
    /// `--output-watch-events` (streams only, with a watch): print each change as a watch
    /// event, `{"type":"ADDED","object":…}`, the objects listed first as `ADDED`.
    pub output_watch_events: bool,
}

/// Whether `get` keeps watching after it printed, as kubectl's `get -w` / `--watch-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Watch {
    /// Print once (no watch flag).
    #[default]
    No,
    /// `-w/--watch`: print the objects, then every change.
    Watch,
    /// `--watch-only`: print only the changes (it wins over `--watch`, as in kubectl).
    WatchOnly,
}

impl Get {
    /// Whether kubectl would print one object rather than a `List` for `-o json|yaml`: exactly
    /// one object was asked for by name.
    pub fn single_item_implied(&self) -> bool {
        match &self.targets {
            Targets::Types(_) => false,
            Targets::Names { names, .. } => names.len() == 1,
            Targets::Pairs(pairs) => pairs.len() == 1,
        }
    }
}

/// What `get` was asked to fetch. Resource types are kept as written; the agent resolves them
/// through discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every object of each type, narrowed by the selectors: `get pods,svc`.
    Types(Vec<String>),
    /// Named objects of one type: `get pod a b`.
    Names {
        /// The resource type as written (`pod`, `po`, `deployments.apps`, ...).
        resource: String,
        /// The object names, in order (repeats kept, as kubectl keeps them).
        names: Vec<String>,
    },
    /// `type/name` pairs: `get pod/a svc/b`, and `get pods,svc a` (which kubectl turns into
    /// `pods/a svc/a`).
    Pairs(Vec<ResourceName>),
}

/// One `type/name` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName {
    /// The resource type as written.
    pub resource: String,
    /// The object name.
    pub name: String,
}

/// The `-o` formats `get` prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GetOutput {
    /// The server's table (the default).
    #[default]
    Table,
    /// `-o wide`: the server's table including its priority columns.
    Wide,
    /// `-o name`: `kind.group/name` per object.
    Name,
    /// `-o json`.
    Json,
    /// `-o yaml`.
    Yaml,
    /// `-o kyaml` (kubectl 1.34+): YAML in KYAML's flow style, every string quoted.
    Kyaml,
    /// `-o jsonpath=TEMPLATE` (`as_json: false`) or `-o jsonpath-as-json=TEMPLATE`: kubectl's
    /// JSONPath dialect, run by the agent on the (redacted) objects.
    JsonPath {
        /// The template as written, e.g. `{.items[*].metadata.name}`.
        template: String,
        /// `jsonpath-as-json`: print the results as one indented JSON array.
        as_json: bool,
    },
    /// `-o custom-columns=HEADER:PATH,...`: the spec as written; the agent parses the columns.
    CustomColumns(String),
}

impl GetOutput {
    /// Whether kubectl prints this format through its human-readable (table) printer.
    pub fn is_human(&self) -> bool {
        matches!(self, GetOutput::Table | GetOutput::Wide)
    }
}

pub(super) fn parse(args: &[String], mode: Mode) -> Result<Get, CommandError> {
    let scanned = match mode {
        Mode::Once => flags::scan("get", args, FLAGS)?,
        Mode::Stream => flags::scan("get", args, &[FLAGS, WATCH_FLAGS].concat())?,
    };
    let output = match scanned.last("output") {
        None => GetOutput::Table,
        Some(f) => parse_output(&f.value, &f.raw)?,
    };
    let watch = match (scanned.switch("watch")?, scanned.switch("watch-only")?) {
        (_, true) => Watch::WatchOnly,
        (true, false) => Watch::Watch,
        (false, false) => Watch::No,
    };
    let output_watch_events = scanned.switch("output-watch-events")?;
    let namespace = scanned.last("namespace").map(namespace_value).transpose()?;
    let label_selector = selector(&scanned, "selector")?;
    let field_selector = selector(&scanned, "field-selector")?;
    let mut label_columns = Vec::new();
    for f in scanned.all("label-columns") {
        for key in f.value.split(',') {
            let key = key.trim();
            if key.is_empty() || key.chars().any(char::is_control) {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!("invalid label column list {:?}", f.value),
                ));
            }
            label_columns.push(key.to_string());
        }
    }
    let chunk_size = match scanned.last("chunk-size") {
        None => DEFAULT_CHUNK_SIZE,
        Some(f) => number(&f.value, &f.raw, "--chunk-size")?,
    };
    let limit = match scanned.last("limit") {
        None => None,
        Some(f) => match number(&f.value, &f.raw, "--limit")? {
            0 => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "`--limit` must be at least 1".to_string(),
                ));
            }
            n => Some(n),
        },
    };
    let sort_by = match scanned.last("sort-by") {
        None => None,
        Some(f) if f.value.chars().any(char::is_control) => {
            return Err(CommandError::new(
                "invalid_argument",
                Some(f.raw.clone()),
                "`--sort-by` contains control characters".to_string(),
            ));
        }
        Some(f) => {
            let path = jsonpath::relaxed(&f.value);
            template_within_limits("--sort-by", path.clone().and_then(|p| jsonpath::parse(&p)))?;
            (!f.value.is_empty()).then(|| f.value.clone())
        }
    };
    let allow_missing_template_keys = match scanned.last("allow-missing-template-keys") {
        None => true,
        Some(_) => scanned.switch("allow-missing-template-keys")?,
    };
    if scanned.switch("show-labels")? && !output.is_human() {
        let flag = scanned.last("output");
        return Err(CommandError::usage(
            flag.map(|f| f.raw.clone()),
            format!(
                "error: --show-labels option cannot be used with {} printer\n",
                flag.map(|f| f.value.as_str()).unwrap_or_default()
            ),
        ));
    }
    if output_watch_events && watch == Watch::No {
        return Err(CommandError::usage(
            scanned.last("output-watch-events").map(|f| f.raw.clone()),
            "error: --output-watch-events option can only be used with --watch or --watch-only\n",
        ));
    }
    if watch != Watch::No {
        watchable(&scanned, &output)?;
        if scanned.positionals.is_empty() {
            // kubectl skips its "You must specify the type" check for a watch; the builder
            // then finds nothing to watch.
            return Err(CommandError::usage(
                None,
                "error: You must provide one or more resources by argument or filename.\n\
                 Example resource specifications include:\n   '-f rsrc.yaml'\n   \
                 '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'\n",
            ));
        }
    }
    let targets = targets(&scanned.positionals)?;
    if watch != Watch::No
        && let Targets::Types(types) = &targets
        && types.len() > 1
    {
        // cli-runtime's builder with `SingleResourceType()`, before any request.
        return Err(CommandError::usage(
            scanned.positionals.first().cloned(),
            "error: you may only specify a single resource type\n",
        ));
    }
    if label_selector.is_some() || field_selector.is_some() {
        match &targets {
            Targets::Types(_) => {}
            Targets::Names { .. } => {
                return Err(CommandError::new(
                    "invalid_argument",
                    scanned.positionals.get(1).cloned(),
                    "name cannot be provided when a selector is specified".to_string(),
                ));
            }
            Targets::Pairs(_) => {
                return Err(CommandError::new(
                    "invalid_argument",
                    scanned.positionals.first().cloned(),
                    "selectors cannot be used when passing resource/name arguments".to_string(),
                ));
            }
        }
    }
    Ok(Get {
        targets,
        namespace,
        all_namespaces: scanned.switch("all-namespaces")?,
        label_selector,
        field_selector,
        output,
        show_labels: scanned.switch("show-labels")?,
        label_columns,
        no_headers: scanned.switch("no-headers")?,
        show_kind: scanned.switch("show-kind")?,
        show_managed_fields: scanned.switch("show-managed-fields")?,
        ignore_not_found: scanned.switch("ignore-not-found")?,
        chunk_size,
        limit,
        sort_by,
        allow_missing_template_keys,
        watch,
        output_watch_events,
    })
}

/// What a watching `get` cannot print yet: refused before anything runs, naming the flag.
fn watchable(scanned: &Scanned, output: &GetOutput) -> Result<(), CommandError> {
    let flag = |long: &str| {
        scanned
            .last(long)
            .map(|f| f.raw.clone())
            .unwrap_or_else(|| format!("--{long}"))
    };
    match output {
        GetOutput::Table
        | GetOutput::Wide
        | GetOutput::Name
        | GetOutput::Json
        | GetOutput::Yaml => {}
        _ => {
            return Err(CommandError::new(
                "unsupported_output",
                Some(flag("output")),
                "a watching `get` prints the table, -o wide, -o name, -o json or -o yaml"
                    .to_string(),
            ));
        }
    }
    for long in ["sort-by", "limit"] {
        if scanned.last(long).is_some() {
            return Err(CommandError::new(
                "invalid_argument",
                Some(flag(long)),
                format!(
                    "`--{long}` cannot be used with a watching `get`: changes are printed as they come"
                ),
            ));
        }
    }
    Ok(())
}

/// The formats kubectl's `get` lists when it does not know one.
const KUBECTL_GET_FORMATS: &str = "custom-columns,custom-columns-file,go-template,\
     go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,kyaml,name,template,\
     templatefile,wide,yaml";

fn parse_output(value: &str, raw: &str) -> Result<GetOutput, CommandError> {
    let (format, template) = value.split_once('=').unwrap_or((value, ""));
    let template_output = |template: &str| -> Result<String, CommandError> {
        if template.is_empty() {
            let what = if format == "custom-columns" {
                "custom-columns format specified but no custom columns given"
            } else {
                "template format specified but no template given"
            };
            return Err(CommandError::usage(
                Some(raw.to_string()),
                format!("error: {what}\n"),
            ));
        }
        Ok(template.to_string())
    };
    // kubectl's json, yaml and name printers match their format in any case.
    match value.to_ascii_lowercase().as_str() {
        "name" => return Ok(GetOutput::Name),
        "json" => return Ok(GetOutput::Json),
        "yaml" => return Ok(GetOutput::Yaml),
        "kyaml" => return Ok(GetOutput::Kyaml),
        _ => {}
    }
    match value {
        "" => Ok(GetOutput::Table),
        "wide" => Ok(GetOutput::Wide),
        _ if format == "jsonpath" || format == "jsonpath-as-json" => {
            let template = template_output(template)?;
            template_within_limits("--output", jsonpath::parse(&template))?;
            Ok(GetOutput::JsonPath {
                template,
                as_json: format == "jsonpath-as-json",
            })
        }
        _ if format == "custom-columns" => {
            let spec = template_output(template)?;
            template_within_limits("--output", jsonpath::custom_columns(&spec))?;
            Ok(GetOutput::CustomColumns(spec))
        }
        _ => Err(match format {
            "go-template" | "go-template-file" | "template" | "templatefile" => CommandError::new(
                "forbidden_flag",
                Some(raw.to_string()),
                format!(
                    "output format `{format}` is forbidden: Go templates run arbitrary template code \
                     on the agent; use -o json, -o yaml, -o wide or -o name"
                ),
            ),
            "jsonpath-file" | "custom-columns-file" => CommandError::new(
                "forbidden_flag",
                Some(raw.to_string()),
                format!(
                    "output format `{format}` is forbidden: it reads a file on the agent; use \
                     -o json, -o yaml, -o wide or -o name"
                ),
            ),
            _ => CommandError::usage(
                Some(raw.to_string()),
                format!(
                    "error: unable to match a printer suitable for the output format {value:?}, \
                     allowed formats are: {KUBECTL_GET_FORMATS}\n"
                ),
            ),
        }),
    }
}

/// `-o` for a command that prints only some of `get`'s formats (`allowed`; no `-o` is the
/// command's table): read as `get` reads it (json, yaml, name and kyaml in any case), then refused with
/// `unsupported_output` unless `command` prints that format.
pub(super) fn output_among(
    scanned: &Scanned,
    command: &str,
    allowed: &[(GetOutput, &str)],
) -> Result<GetOutput, CommandError> {
    let Some(f) = scanned.last("output") else {
        return Ok(GetOutput::Table);
    };
    // An empty `-o=` is not the table here: kubectl refuses it for these commands.
    match parse_output(&f.value, &f.raw) {
        Ok(output) if allowed.iter().any(|(a, _)| *a == output) => return Ok(output),
        _ => {}
    }
    let names: Vec<&str> = allowed.iter().map(|(_, name)| *name).collect();
    Err(CommandError::new(
        "unsupported_output",
        Some(f.raw.clone()),
        format!(
            "unsupported output format {:?} for `{command}`; supported: {}",
            f.value,
            names.join(", ")
        ),
    ))
}

pub(super) fn selector(scanned: &Scanned, long: &str) -> Result<Option<String>, CommandError> {
    let Some(f) = scanned.last(long) else {
        return Ok(None);
    };
    let value = f.value.trim();
    if value.len() > MAX_SELECTOR_BYTES {
        return Err(limit_exceeded(
            Some(format!("--{long}")),
            LimitExceeded::new(format!("--{long}"), MAX_SELECTOR_BYTES, "bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(CommandError::new(
            "invalid_argument",
            Some(f.raw.clone()),
            format!("`--{long}` contains control characters"),
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

pub(super) fn number(value: &str, raw: &str, flag: &str) -> Result<u32, CommandError> {
    value.parse::<u32>().map_err(|_| {
        CommandError::new(
            "invalid_argument",
            Some(raw.to_string()),
            format!("`{flag}` needs a non-negative whole number, got {value:?}"),
        )
    })
}

/// A resource type as written: `pods`, `po`, `Pod`, `deployments.apps`, `deployments.v1.apps`.
fn resource_type(s: &str) -> Result<String, CommandError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(CommandError::new(
            "invalid_argument",
            Some(s.to_string()),
            format!(
                "invalid resource type {s:?}: use a resource name, short name or kind, optionally \
                 with its group (e.g. `pods`, `po`, `deployments.apps`)"
            ),
        ))
    }
}

/// An object name. Names end up in URL paths on the agent, so path tricks are refused here.
fn object_name(s: &str) -> Result<String, CommandError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && !s.contains(['/', '%', '?', '#'])
        && !s.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(s.to_string())
    } else {
        Err(CommandError::new(
            "invalid_argument",
            Some(s.to_string()),
            format!("invalid object name {s:?}"),
        ))
    }
}

/// kubectl's `SplitResourceArgument`: split on commas, drop repeats, keep order.
fn split_types(arg: &str) -> Result<Vec<String>, CommandError> {
    let mut out: Vec<String> = Vec::new();
    for t in arg.split(',') {
        let t = resource_type(t)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// [`targets_unbounded`], refusing more names (one API request each) or types than
/// [`MAX_NAMES`] and [`MAX_TYPES`].
pub(super) fn targets(positionals: &[String]) -> Result<Targets, CommandError> {
    let targets = targets_unbounded(positionals)?;
    let (types, names) = match &targets {
        Targets::Types(types) => (types.len(), 0),
        Targets::Names { names, .. } => (1, names.len()),
        Targets::Pairs(pairs) => {
            let mut types: Vec<&str> = pairs.iter().map(|p| p.resource.as_str()).collect();
            types.sort_unstable();
            types.dedup();
            (types.len(), pairs.len())
        }
    };
    if types > MAX_TYPES {
        return Err(limit_exceeded(
            positionals.first().cloned(),
            LimitExceeded::new(format!("{types} resource types"), MAX_TYPES, "types"),
        ));
    }
    if names > MAX_NAMES {
        return Err(limit_exceeded(
            positionals.get(1).or(positionals.first()).cloned(),
            LimitExceeded::new(
                format!("{names} objects by name (one request each)"),
                MAX_NAMES,
                "names",
            ),
        ));
    }
    Ok(targets)
}

fn targets_unbounded(positionals: &[String]) -> Result<Targets, CommandError> {
    let Some(first) = positionals.first() else {
        return Err(CommandError::usage(
            None,
            "You must specify the type of resource to get. Use \"kubectl api-resources\" for a \
             complete list of supported resources.\n\nerror: Required resource not specified.\n\
             Use \"kubectl explain <resource>\" for a detailed description of that resource (e.g. \
             kubectl explain pods).\nSee 'kubectl get -h' for help and examples\n",
        ));
    };
    let slashed = positionals.iter().filter(|p| p.contains('/')).count();
    if slashed > 0 {
        if slashed != positionals.len() {
            let plain = positionals.iter().find(|p| !p.contains('/')).cloned();
            return Err(CommandError::usage(
                plain,
                "error: there is no need to specify a resource type as a separate argument when \
                 passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' \
                 instead of 'kubectl get resource resource/<resource_name>'\n",
            ));
        }
        let mut pairs = Vec::new();
        for p in positionals {
            let parts: Vec<&str> = p.split('/').collect();
            if parts.len() != 2 {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(p.clone()),
                    "arguments in resource/name form may not have more than one slash".to_string(),
                ));
            }
            if parts[0].contains(',') || parts[0].is_empty() || parts[1].is_empty() {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(p.clone()),
                    "arguments in resource/name form must have a single resource and name"
                        .to_string(),
                ));
            }
            pairs.push(ResourceName {
                resource: resource_type(parts[0])?,
                name: object_name(parts[1])?,
            });
        }
        return Ok(Targets::Pairs(pairs));
    }
    let types = split_types(first)?;
    let names = positionals[1..]
        .iter()
        .map(|n| object_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match (types.len(), names.is_empty()) {
        (_, true) => Targets::Types(types),
        (1, false) => Targets::Names {
            resource: types.into_iter().next().unwrap_or_default(),
            names,
        },
        (_, false) => Targets::Pairs(
            types
                .iter()
                .flat_map(|t| {
                    names.iter().map(move |n| ResourceName {
                        resource: t.clone(),
                        name: n.clone(),
                    })
                })
                .collect(),
        ),
    })
}
