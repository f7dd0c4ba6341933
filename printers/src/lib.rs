//! kubectl's printers and the Go code they print through, ported byte for byte.
//!
//! Everything here is a pure function of its input: no I/O, no async, no Kubernetes client. The
//! crate depends on `kubeline-shared`, `serde`, `serde_json` and `chrono` only, so the compiler
//! holds it to that. The agent fetches objects and hands them over; these modules turn them into
//! the bytes kubectl would print.
//!
//! - [`table`] — kubectl's human-readable printer over the API server's `Table` rendering;
//! - [`jsonpath`] and [`custom_columns`] — `-o jsonpath=` / `-o custom-columns=` templates, with
//!   kubeline's evaluation budget;
//! - [`sorter`] — `--sort-by`;
//! - [`go`] — ports of the Go libraries kubectl prints through (`fmt`, `encoding/json`, go-yaml
//!   v2, `sort`, `text/tabwriter`, apimachinery's label selectors), checked against golden output
//!   of the real Go code in `go/testdata`.

pub mod custom_columns;
pub mod go;
pub mod jsonpath;
pub mod sorter;
pub mod table;
