//! `-o custom-columns=HEADER:PATH,...` (kubectl `pkg/cmd/get/customcolumn.go`).
//!
//! Each column is a relaxed JSONPath (`.metadata.name`, `metadata.name` or `{.metadata.name}`)
//! evaluated with missing keys allowed; several results are joined with commas, no result is
//! `<none>`, and values print as Go's `fmt.Sprint` prints them, through kubectl's tab writer.

use crate::go::tabwriter::TabWriter;
use crate::jsonpath::{Budget, JsonPath};
use kubeline_shared::jsonpath as syntax;
use kubeline_shared::limits::MAX_TEMPLATE_OUTPUT_BYTES;
use serde_json::Value;

/// One parsed column.
#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    pub path: JsonPath,
}

/// Parses a spec as `NewCustomColumnsPrinterFromSpec` does; errors are kubectl's. Every column
/// draws from one evaluation budget.
pub fn parse(spec: &str) -> Result<Vec<Column>, String> {
    let budget = Budget::default();
    let columns = syntax::custom_columns(spec).map_err(|e| e.to_string())?;
    Ok(columns
        .into_iter()
        .map(|c| Column {
            header: c.header,
            path: JsonPath::from_nodes(c.path)
                .allow_missing_keys(true)
                .with_budget(budget.clone()),
        })
        .collect())
}

/// What was printed before a column failed, and why it failed.
#[derive(Debug)]
pub struct PrintError {
    /// The header and the rows before the failing object, as kubectl's deferred flush leaves them.
    pub printed: String,
    /// The column's error, as client-go words it.
    pub error: String,
}

/// Prints the objects (the items of a list, or one object) under the columns' headers.
pub fn print(
    columns: &[Column],
    objects: &[&Value],
    no_headers: bool,
) -> Result<String, PrintError> {
    let mut w = TabWriter::new();
    if !no_headers {
        let headers: Vec<&str> = columns.iter().map(|c| c.header.as_str()).collect();
        w.write(&format!("{}\n", headers.join("\t")));
    }
    let over_limit = || PrintError {
        printed: String::new(),
        error: crate::jsonpath::output_limit(),
    };
    // Counted value by value: one cell of `..` can be many times the object's size.
    let mut written = 0usize;
    for o in objects {
        let mut cells = Vec::with_capacity(columns.len());
        for c in columns {
            let results = match c.path.find_results(o) {
                Ok(r) => r,
                Err(error) => {
                    w.flush();
                    return Err(PrintError {
                        printed: w.take_output(),
                        error,
                    });
                }
            };
            let mut values: Vec<String> = Vec::new();
            if results.first().is_none_or(|r| r.is_empty()) {
                values.push("<none>".into());
            }
            for r in &results {
                for v in r {
                    let value = escape_terminal(&v.go_sprint());
                    written += value.len() + 1;
                    if written > MAX_TEMPLATE_OUTPUT_BYTES {
                        return Err(over_limit());
                    }
                    values.push(value);
                }
            }
            cells.push(values.join(","));
        }
        w.write(&format!("{}\n", cells.join("\t")));
    }
    w.flush();
    Ok(w.take_output())
}

/// cli-runtime's `printers.EscapeTerminal`.
fn escape_terminal(s: &str) -> String {
    s.replace('\x1b', "^[").replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_parse_like_kubectl() {
        let cols = parse("NAME:.metadata.name,NS:metadata.namespace,X:{.spec}").unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[1].header, "NS");
        assert_eq!(
            parse("NAME").unwrap_err(),
            "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"
        );
        assert!(parse("A:{.a}{.b}").is_err());
    }

    #[test]
    fn columns_print() {
        let cols = parse(
            "NAME:.metadata.name,PORTS:.spec.ports[*].port,MISSING:.nope,LABELS:.metadata.labels",
        )
        .unwrap();
        let a = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let b = json!({"metadata": {"name": "db-primary"}, "spec": {}});
        assert_eq!(
            print(&cols, &[&a, &b], false).unwrap(),
            "NAME         PORTS    MISSING   LABELS\n\
             web          80,443   <none>    map[app:web]\n\
             db-primary   <none>   <none>    <none>\n"
        );
    }
}
