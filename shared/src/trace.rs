//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` a caller sends travel with its command to the agent, so that the broker's and
//! the agent's records of one command share a trace id.
//!
//! Parsing is strict and never fails loudly: a malformed header is ignored (the broker starts a
//! fresh trace), as the specification asks of receivers.

use serde::{Deserialize, Serialize};

/// Header carrying the trace id, the caller's span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` passed on; longer ones are dropped whole (the specification allows
/// dropping, and 512 bytes is the size it asks every system to pass on at least).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// The trace context of a command, as queued and as sent to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `traceparent`: `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`; the parent
    /// is the broker's span of the request.
    pub traceparent: String,
    /// `tracestate` as the caller sent it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id (never zero).
    pub trace_id: u128,
    /// Span id of the parent (never zero).
    pub parent_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` when it is malformed.
    ///
    /// Version `00` must be exactly four fields; a later version may append fields, which are
    /// ignored. Version `ff`, upper-case hex and all-zero ids are invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        let more = parts.next().is_some();
        if version.len() != 2 || !lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && (more || value.len() != 55) {
            return None;
        }
        if trace_id.len() != 32 || parent_id.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(lower_hex(trace_id) && lower_hex(parent_id) && lower_hex(flags)) {
            return None;
        }
        let parsed = Self {
            trace_id: u128::from_str_radix(trace_id, 16).ok()?,
            parent_id: u64::from_str_radix(parent_id, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.parent_id != 0).then_some(parsed)
    }

    /// The same trace with `span_id` as the parent: what a hop passes on.
    pub fn child(self, span_id: u64) -> Self {
        Self {
            parent_id: span_id,
            ..self
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The parent span id as 16 lower-case hex digits.
    pub fn parent_id_hex(&self) -> String {
        format!("{:016x}", self.parent_id)
    }
}

impl std::fmt::Display for TraceParent {
    /// Version `00` form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// The `tracestate` worth passing on: printable ASCII within [`MAX_TRACESTATE_BYTES`].
pub fn checked_tracestate(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()
        && value.len() <= MAX_TRACESTATE_BYTES
        && value.bytes().all(|b| (0x20..0x7f).contains(&b)))
    .then(|| value.to_owned())
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), EXAMPLE);
        let child = tp.child(0xabc);
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn later_versions_may_append_fields() {
        let tp = TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
            .unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn tracestate_is_bounded_and_printable() {
        assert_eq!(checked_tracestate(" a=1,b=2 ").as_deref(), Some("a=1,b=2"));
        assert_eq!(checked_tracestate(""), None);
        assert_eq!(checked_tracestate("a=\u{1}"), None);
        assert_eq!(
            checked_tracestate(&"a".repeat(MAX_TRACESTATE_BYTES + 1)),
            None
        );
    }
}
