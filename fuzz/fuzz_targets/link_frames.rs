//! The link protocol's decoder, both directions, on any frame text.
#![no_main]

use kubeline_shared::protocol::{AgentMessage, BrokerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<AgentMessage>(text);
        let _ = serde_json::from_str::<BrokerMessage>(text);
    }
});
