//! `-o custom-columns=` specs and `--sort-by` expressions over a small list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|spec: &str| {
    let items: Vec<_> = (0..20)
        .map(|i| json!({"metadata": {"name": format!("p{i}")}, "spec": {"x": [i, "s", null, true], "b": i % 2 == 0}}))
        .collect();
    let data = json!({ "kind": "List", "items": items });
    let _ = kubeline_shared::jsonpath::custom_columns(spec);
    let _ = kubeline_agent::exec::fuzzing::custom_columns(spec, &data);
    let _ = kubeline_agent::exec::fuzzing::sort_by(spec, &data);
});
