//! kubectl's JSONPath: parse with limits, then evaluate within the step and output budgets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|template: &str| {
    let items: Vec<_> = (0..20)
        .map(|i| json!({"metadata": {"name": format!("p{i}"), "labels": {"a": "b"}}, "spec": {"x": [i, "s", null, true]}}))
        .collect();
    let data = json!({ "kind": "List", "items": items });
    let _ = kubeline_shared::jsonpath::parse(template);
    let _ = kubeline_agent::exec::fuzzing::jsonpath(template, &data);
});
