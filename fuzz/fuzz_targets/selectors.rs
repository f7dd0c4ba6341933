//! Label and field selectors as every command that takes them reads them (kubeline passes them
//! to the API server, which parses them; the broker and agent bound and check them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|selector: String| {
    for (ct, args) in [
        ("get", vec!["pods".to_string(), "-l".to_string(), selector.clone()]),
        ("get", vec!["pods".to_string(), format!("--field-selector={selector}")]),
        ("describe", vec!["pods".to_string(), "-l".to_string(), selector.clone()]),
        ("logs", vec!["-l".to_string(), selector.clone()]),
        ("top", vec!["pods".to_string(), "-l".to_string(), selector.clone()]),
        ("events", vec![format!("--for={selector}")]),
    ] {
        let _ = kubeline_shared::command::parse(ct, &args);
    }
});
