//! Property tests: whatever a caller sends, the shared parsers answer (accept or refuse with a
//! reason) without panicking, and everything they accept is within kubeline's limits.
//!
//! Run longer with `PROPTEST_CASES=100000 cargo test -p kubeline-shared --test hostile_input`.

use kubeline_shared::command::{self, Command, GetOutput};
use kubeline_shared::jsonpath::{self, Node, ParseError};
use kubeline_shared::limits::{
    MAX_ARGS, MAX_ARGV_BYTES, MAX_NAMES, MAX_RANGE_DEPTH, MAX_TEMPLATE_ACTIONS, MAX_TEMPLATE_BYTES,
    MAX_TEMPLATE_NESTING,
};
use kubeline_shared::protocol::{AgentMessage, BrokerMessage};
use proptest::prelude::*;

/// Pieces of kubectl's JSONPath dialect, so generated templates reach deep into the parser
/// instead of failing on the first character.
fn template_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{range ".to_string()),
        Just("{end}".to_string()),
        Just(".items".to_string()),
        Just("[*]".to_string()),
        Just("[?(@.".to_string()),
        Just(")]".to_string()),
        Just("==".to_string()),
        Just("'x'".to_string()),
        Just("\"y\\n\"".to_string()),
        Just("..".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("@".to_string()),
        Just("$".to_string()),
        Just("-".to_string()),
        (any::<i64>()).prop_map(|i| i.to_string()),
        "[a-z]{1,6}",
        "\\PC{0,3}",
    ]
}

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(template_piece(), 0..64).prop_map(|v| v.concat())
}

/// The deepest nesting of filters and unions in `nodes`.
fn nesting(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::List(l) => nesting(l),
            Node::Filter { left, right, .. } => 1 + nesting(left).max(nesting(right)),
            Node::Union(branches) => 1 + branches.iter().map(|b| nesting(b)).max().unwrap_or(0),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// kubectl-ish argv: flags, values, resource words, and junk.
fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pods".to_string()),
        Just("-n".to_string()),
        Just("-o".to_string()),
        Just("-l".to_string()),
        Just("-A".to_string()),
        Just("--sort-by".to_string()),
        Just("--field-selector".to_string()),
        Just("--as=admin".to_string()),
        Just("--raw".to_string()),
        Just("-f".to_string()),
        Just("--".to_string()),
        Just("pod/x".to_string()),
        template().prop_map(|t| format!("jsonpath={t}")),
        template().prop_map(|t| format!("custom-columns=A:{t},B:.b")),
        template().prop_map(|t| format!("--sort-by={t}")),
        "-{1,2}[a-z-]{0,12}(=\\PC{0,8})?",
        "\\PC{0,24}",
    ]
}

fn command_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(command::SUPPORTED_COMMANDS).prop_map(str::to_string),
        Just("delete".to_string()),
        "\\PC{0,8}",
    ]
}

proptest! {
    #[test]
    fn jsonpath_parse_never_panics_and_honours_its_limits(t in template()) {
        match jsonpath::parse(&t) {
            Ok(root) => {
                prop_assert!(t.len() <= MAX_TEMPLATE_BYTES);
                let actions = root.iter().filter(|n| matches!(n, Node::List(_))).count();
                prop_assert!(actions <= MAX_TEMPLATE_ACTIONS);
                prop_assert!(nesting(&root) <= MAX_TEMPLATE_NESTING + 1);
            }
            Err(ParseError::Syntax(m)) => prop_assert!(!m.is_empty()),
            Err(ParseError::Limit(l)) => prop_assert!(l.limit > 0),
        }
    }

    #[test]
    fn custom_columns_and_relaxed_paths_never_panic(t in template(), u in template()) {
        let _ = jsonpath::custom_columns(&format!("{t}:{u}"));
        let _ = jsonpath::relaxed(&t);
        let _ = jsonpath::parse_action(&u);
    }

    #[test]
    fn the_command_parser_never_panics(
        ct in command_type(),
        args in prop::collection::vec(arg(), 0..12),
    ) {
        if let Ok(cmd) = command::parse(&ct, &args) {
            prop_assert!(args.len() <= MAX_ARGS);
            prop_assert!(args.iter().map(String::len).sum::<usize>() <= MAX_ARGV_BYTES);
            if let Command::Get(g) = cmd
                && let GetOutput::JsonPath { template, .. } = &g.output {
                    prop_assert!(!matches!(jsonpath::parse(template), Err(ParseError::Limit(_))));
                }
            // Nothing accepted may smuggle a forbidden flag. After `--` every argument is a
            // name (kubectl reads `get -- --raw` as a resource type, and so does kubeline).
            let flags = args.iter().take_while(|a| *a != "--");
            prop_assert!(!flags.into_iter().any(|a| a == "--raw" || a.starts_with("--as=")));
        }
    }

    /// The policy holds when re-checked: the agent parses again what the broker accepted (after
    /// the argv's trip through JSON and the queue) and must reach the same verdict and the same
    /// command, so nothing the broker lets through is refused or read differently there.
    #[test]
    fn what_the_broker_accepts_the_agent_accepts_the_same(
        ct in command_type(),
        args in prop::collection::vec(arg(), 0..12),
    ) {
        if let Ok(first) = command::parse(&ct, &args) {
            let wire: Vec<String> =
                serde_json::from_str(&serde_json::to_string(&args).unwrap()).unwrap();
            match command::parse(&ct, &wire) {
                Ok(again) => prop_assert_eq!(first, again),
                Err(e) => prop_assert!(false, "accepted once, refused on re-check: {e}"),
            }
        }
    }

    #[test]
    fn many_names_are_refused_by_count(n in (MAX_NAMES + 1)..(MAX_NAMES * 3)) {
        let mut args = vec!["pods".to_string()];
        args.extend((0..n).map(|i| format!("p{i}")));
        let e = command::parse("get", &args).unwrap_err();
        prop_assert_eq!(e.code, "limit_exceeded");
    }

    #[test]
    fn range_nesting_is_bounded(depth in 0usize..40) {
        let t = format!("{}{}", "{range .items[*]}".repeat(depth), "{end}".repeat(depth));
        prop_assert_eq!(jsonpath::parse(&t).is_ok(), depth <= MAX_RANGE_DEPTH);
    }

    #[test]
    fn link_frames_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = serde_json::from_str::<AgentMessage>(&text);
        let _ = serde_json::from_str::<BrokerMessage>(&text);
    }

    #[test]
    fn link_frames_with_the_right_shape_decode_or_fail_cleanly(
        kind in prop::sample::select(&["hello", "output", "done", "pong", "execute", "cancel", "ping"][..]),
        field in "\\PC{0,16}",
        value in prop_oneof![Just("null".to_string()), Just("1e999".to_string()), Just("-1".to_string()), "\"\\PC{0,16}\"".prop_map(|s| s)],
    ) {
        let text = format!(r#"{{"type":"{kind}","{field}":{value},"result_id":"r","data":"d"}}"#);
        let _ = serde_json::from_str::<AgentMessage>(&text);
        let _ = serde_json::from_str::<BrokerMessage>(&text);
    }
}
