//! `version`: only the server side of what kubectl prints (see the `Version` command's docs).

use crate::exec::api;
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::json as gojson;
use kubeline_printers::go::yaml as goyaml;
use kubeline_shared::command::{Version, VersionOutput};
use serde_json::{Map, Value};

/// Fields of apimachinery's `version.Info`, in struct order; `true` marks `omitempty` fields.
const INFO_FIELDS: &[(&str, bool)] = &[
    ("major", false),
    ("minor", false),
    ("emulationMajor", true),
    ("emulationMinor", true),
    ("minCompatibilityMajor", true),
    ("minCompatibilityMinor", true),
    ("gitVersion", false),
    ("gitCommit", false),
    ("gitTreeState", false),
    ("buildDate", false),
    ("goVersion", false),
    ("compiler", false),
    ("platform", false),
];

pub(crate) async fn run(ex: &Executor, v: &Version) -> Outcome {
    let info = match api::get(&ex.client, "/version", api::ACCEPT_JSON, None).await {
        Ok(r) => r.body,
        Err(e) => return Outcome::failed(e.kubectl_message()),
    };
    Outcome {
        output: render(&info, v.output),
        error: None,
        exit_code: 0,
    }
}

/// Prints the server's `version.Info` as kubectl does, without the client-side parts.
fn render(info: &Value, output: VersionOutput) -> String {
    let field = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match output {
        VersionOutput::Text => format!("Server Version: {}\n", field("gitVersion")),
        VersionOutput::Json => {
            // json.MarshalIndent(&versionInfo, "", "  ") of a struct: fields in declaration order.
            let values: Vec<(&str, Value)> = INFO_FIELDS
                .iter()
                .filter(|(k, omitempty)| !(*omitempty && field(k).is_empty()))
                .map(|(k, _)| (*k, Value::String(field(k))))
                .collect();
            let refs: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
            let mut server = String::new();
            gojson::write_ordered_object(&mut server, &refs, "  ", 1);
            format!("{{\n  \"serverVersion\": {server}\n}}\n")
        }
        VersionOutput::Yaml => {
            let mut server = Map::new();
            for (k, omitempty) in INFO_FIELDS {
                if !(*omitempty && field(k).is_empty()) {
                    server.insert((*k).to_string(), Value::String(field(k)));
                }
            }
            let mut doc = Map::new();
            doc.insert("serverVersion".into(), Value::Object(server));
            // kubectl prints the YAML with Println, hence the extra blank line.
            format!("{}\n", goyaml::to_string(&Value::Object(doc)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> Value {
        json!({
            "major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
            "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
            "gitVersion": "v1.36.3", "gitCommit": "abc123", "gitTreeState": "clean",
            "buildDate": "2026-10-01T12:00:00Z", "goVersion": "go1.26.8", "compiler": "gc",
            "platform": "linux/amd64"
        })
    }

    #[test]
    fn text_json_and_yaml() {
        assert_eq!(
            render(&info(), VersionOutput::Text),
            "Server Version: v1.36.3\n"
        );
        let json = render(&info(), VersionOutput::Json);
        assert!(
            json.starts_with(
                "{\n  \"serverVersion\": {\n    \"major\": \"1\",\n    \"minor\": \"36\",\n"
            ),
            "{json}"
        );
        assert!(
            json.ends_with("    \"platform\": \"linux/amd64\"\n  }\n}\n"),
            "{json}"
        );
        let yaml = render(&info(), VersionOutput::Yaml);
        assert!(
            yaml.starts_with(
                "serverVersion:\n  buildDate: \"2026-10-01T12:00:00Z\"\n  compiler: gc\n"
            ),
            "{yaml}"
        );
        assert!(yaml.ends_with("  platform: linux/amd64\n\n"), "{yaml}");
    }
}
