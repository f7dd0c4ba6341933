//! Table-driven tests of the parser and its policy.

use super::*;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn get(s: &str) -> Get {
    match parse("get", &args(s)) {
        Ok(Command::Get(g)) => g,
        other => panic!("get {s}: {other:?}"),
    }
}

fn base(targets: Targets) -> Get {
    Get {
        targets,
        namespace: None,
        all_namespaces: false,
        label_selector: None,
        field_selector: None,
        output: GetOutput::Table,
        show_labels: false,
        label_columns: vec![],
        no_headers: false,
        show_kind: false,
        show_managed_fields: false,
        ignore_not_found: false,
        chunk_size: get::DEFAULT_CHUNK_SIZE,
        limit: None,
        sort_by: None,
        allow_missing_template_keys: true,
        watch: Watch::No,
        output_watch_events: false,
    }
}

fn types(ts: &[&str]) -> Targets {
    Targets::Types(ts.iter().map(|t| t.to_string()).collect())
}

fn pair(r: &str, n: &str) -> ResourceName {
    ResourceName {
        resource: r.into(),
        name: n.into(),
    }
}

#[test]
fn accepted_get_commands() {
    let cases: Vec<(&str, Get)> = vec![
        ("pods", base(types(&["pods"]))),
        (
            "pods -A",
            Get {
                all_namespaces: true,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --all-namespaces",
            Get {
                all_namespaces: true,
                ..base(types(&["pods"]))
            },
        ),
        ("pods --all-namespaces=false", base(types(&["pods"]))),
        (
            "pods -n credit-service",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -ncredit-service",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -n=credit-service",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "--namespace=credit-service pods",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --namespace credit-service",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -l app=cluster-autoscaler",
            Get {
                label_selector: Some("app=cluster-autoscaler".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --field-selector status.phase=Running",
            Get {
                field_selector: Some("status.phase=Running".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -o wide",
            Get {
                output: GetOutput::Wide,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -owide",
            Get {
                output: GetOutput::Wide,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --output=json",
            Get {
                output: GetOutput::Json,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -o yaml",
            Get {
                output: GetOutput::Yaml,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -o name",
            Get {
                output: GetOutput::Name,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -Ao wide",
            Get {
                all_namespaces: true,
                output: GetOutput::Wide,
                ..base(types(&["pods"]))
            },
        ),
        ("pods,svc,deploy", base(types(&["pods", "svc", "deploy"]))),
        ("pods,pods", base(types(&["pods"]))),
        (
            "pod credit-api-0",
            base(Targets::Names {
                resource: "pod".into(),
                names: vec!["credit-api-0".into()],
            }),
        ),
        (
            "pod/a svc/b",
            base(Targets::Pairs(vec![pair("pod", "a"), pair("svc", "b")])),
        ),
        (
            "pods,svc a",
            base(Targets::Pairs(vec![pair("pods", "a"), pair("svc", "a")])),
        ),
        // Resource names that look like verbs or dangerous flags' names are just names.
        (
            "deployments delete",
            base(Targets::Names {
                resource: "deployments".into(),
                names: vec!["delete".into()],
            }),
        ),
        ("exec", base(types(&["exec"]))),
        (
            "widgets.testbed.kubeline.dev",
            base(types(&["widgets.testbed.kubeline.dev"])),
        ),
        (
            "pods --show-labels --no-headers --show-kind",
            Get {
                show_labels: true,
                no_headers: true,
                show_kind: true,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -L app -L tier,env",
            Get {
                label_columns: vec!["app".into(), "tier".into(), "env".into()],
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --chunk-size=50",
            Get {
                chunk_size: 50,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --chunk-size 0",
            Get {
                chunk_size: 0,
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -A --limit=10",
            Get {
                all_namespaces: true,
                limit: Some(10),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods -- -weird",
            base(Targets::Names {
                resource: "pods".into(),
                names: vec!["-weird".into()],
            }),
        ),
        (
            "pods -n default -n credit-service",
            Get {
                namespace: Some("credit-service".into()),
                ..base(types(&["pods"]))
            },
        ),
        (
            "pods --ignore-not-found",
            Get {
                ignore_not_found: true,
                ..base(types(&["pods"]))
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(get(input), want, "get {input}");
    }
}

#[test]
fn refused_commands() {
    // (command_type, args, code, argument)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("describe", "pods -o yaml", "unknown_flag", Some("-o")),
        ("describe", "-f pod.yaml", "forbidden_flag", Some("-f")),
        ("logs", "x -f", "unknown_flag", Some("-f")),
        (
            "rollout",
            "undo deploy/x",
            "forbidden_command",
            Some("undo"),
        ),
        ("delete", "pods --all", "forbidden_command", None),
        ("apply", "-f x.yaml", "forbidden_command", None),
        ("exec", "x -- sh", "forbidden_command", None),
        ("port-forward", "svc/x 80", "forbidden_command", None),
        ("cordon", "node-1", "forbidden_command", None),
        ("frobnicate", "", "unsupported_command", None),
        (
            "get",
            "pods --raw=/api/v1/secrets",
            "forbidden_flag",
            Some("--raw=/api/v1/secrets"),
        ),
        ("get", "--raw /api", "forbidden_flag", Some("--raw")),
        (
            "get",
            "pods --as=system:admin",
            "forbidden_flag",
            Some("--as=system:admin"),
        ),
        (
            "get",
            "pods --as-group system:masters",
            "forbidden_flag",
            Some("--as-group"),
        ),
        ("get", "pods --as-uid 0", "forbidden_flag", Some("--as-uid")),
        (
            "get",
            "pods --kubeconfig /etc/kubernetes/admin.conf",
            "forbidden_flag",
            Some("--kubeconfig"),
        ),
        (
            "get",
            "pods --context prod",
            "forbidden_flag",
            Some("--context"),
        ),
        (
            "get",
            "pods --cluster=x",
            "forbidden_flag",
            Some("--cluster=x"),
        ),
        ("get", "pods --user=x", "forbidden_flag", Some("--user=x")),
        (
            "get",
            "pods --token=abc",
            "forbidden_flag",
            Some("--token=abc"),
        ),
        (
            "get",
            "pods --server https://evil",
            "forbidden_flag",
            Some("--server"),
        ),
        ("get", "pods -s https://evil", "forbidden_flag", Some("-s")),
        (
            "get",
            "pods --insecure-skip-tls-verify",
            "forbidden_flag",
            Some("--insecure-skip-tls-verify"),
        ),
        (
            "get",
            "pods --certificate-authority=/x",
            "forbidden_flag",
            Some("--certificate-authority=/x"),
        ),
        (
            "get",
            "pods --client-key=/x",
            "forbidden_flag",
            Some("--client-key=/x"),
        ),
        (
            "get",
            "pods --client-certificate /x",
            "forbidden_flag",
            Some("--client-certificate"),
        ),
        ("get", "-f pod.yaml", "forbidden_flag", Some("-f")),
        (
            "get",
            "--filename=pod.yaml",
            "forbidden_flag",
            Some("--filename=pod.yaml"),
        ),
        ("get", "-k dir", "forbidden_flag", Some("-k")),
        ("get", "pods -Af x", "forbidden_flag", Some("-f")),
        (
            "get",
            "pods -o go-template={{.}}",
            "forbidden_flag",
            Some("-o"),
        ),
        (
            "get",
            "pods -o=go-template-file=/etc/passwd",
            "forbidden_flag",
            Some("-o=go-template-file=/etc/passwd"),
        ),
        (
            "get",
            "pods --template={{.}}",
            "forbidden_flag",
            Some("--template={{.}}"),
        ),
        (
            "get",
            "pods -o jsonpath-file=/etc/passwd",
            "forbidden_flag",
            Some("-o"),
        ),
        (
            "get",
            "pods -o custom-columns-file=/etc/passwd",
            "forbidden_flag",
            Some("-o"),
        ),
        ("get", "pods -o jsonpath=", "usage_error", Some("-o")),
        (
            "get",
            "pods -o jsonpath={.items} --show-labels",
            "usage_error",
            Some("-o"),
        ),
        ("get", "pods -o tablez", "usage_error", Some("-o")),
        ("get", "pods --watch", "unknown_flag", Some("--watch")),
        ("get", "pods -w", "unknown_flag", Some("-w")),
        (
            "get",
            "pods --frobnicate",
            "unknown_flag",
            Some("--frobnicate"),
        ),
        ("get", "pods -Z", "unknown_flag", Some("-Z")),
        (
            "get",
            "pods --server-print=false",
            "unknown_flag",
            Some("--server-print=false"),
        ),
        ("get", "pods -n", "missing_flag_value", Some("-n")),
        ("get", "pods -n -A", "missing_flag_value", Some("-n")),
        ("get", "pods -l", "missing_flag_value", Some("-l")),
        (
            "get",
            "pods -n ../../secrets",
            "invalid_argument",
            Some("-n"),
        ),
        ("get", "pods -n Default", "invalid_argument", Some("-n")),
        ("get", "", "usage_error", None),
        ("get", "pod/a/b", "invalid_argument", Some("pod/a/b")),
        ("get", "pod a/b", "usage_error", Some("pod")),
        ("get", "pods,svc/a", "invalid_argument", Some("pods,svc/a")),
        ("get", "pod ..", "invalid_argument", Some("..")),
        ("get", "pod x%2F..", "invalid_argument", Some("x%2F..")),
        ("get", "pods/", "invalid_argument", Some("pods/")),
        ("get", "pods,", "invalid_argument", Some("")),
        ("get", "po?x", "invalid_argument", Some("po?x")),
        ("get", "pod x -l app=a", "invalid_argument", Some("x")),
        (
            "get",
            "pod/x --field-selector a=b",
            "invalid_argument",
            Some("pod/x"),
        ),
        (
            "get",
            "pods --chunk-size=-1",
            "invalid_argument",
            Some("--chunk-size=-1"),
        ),
        (
            "get",
            "pods --limit=0",
            "invalid_argument",
            Some("--limit=0"),
        ),
        (
            "get",
            "pods --show-labels=maybe",
            "invalid_argument",
            Some("--show-labels=maybe"),
        ),
        ("version", "--client", "unknown_flag", Some("--client")),
        ("version", "-o wide", "usage_error", Some("-o")),
        ("version", "extra", "unexpected_argument", Some("extra")),
        (
            "version",
            "--kubeconfig=/x",
            "forbidden_flag",
            Some("--kubeconfig=/x"),
        ),
        ("cluster-info", "dump", "unsupported_command", Some("dump")),
        ("cluster-info", "--as admin", "forbidden_flag", Some("--as")),
        ("cluster-info", "-A", "unknown_flag", Some("-A")),
    ];
    for &(command, input, code, argument) in cases {
        let err = parse(command, &args(input)).expect_err(&format!("{command} {input} parsed"));
        assert_eq!(err.code, code, "{command} {input}: {err:?}");
        assert_eq!(
            err.argument.as_deref(),
            argument,
            "{command} {input}: {err:?}"
        );
        assert!(!err.message.is_empty());
    }
}

#[test]
fn messages_say_why() {
    let err = parse("delete", &args("pod x")).unwrap_err();
    assert!(err.message.contains("read-only"), "{}", err.message);
    let err = parse("get", &args("pods --as=admin")).unwrap_err();
    assert!(err.message.contains("impersonation"), "{}", err.message);
    let err = parse("get", &args("pods --kubeconfig=/x")).unwrap_err();
    assert!(err.message.contains("credentials"), "{}", err.message);
    let err = parse("get", &args("pods --frobnicate")).unwrap_err();
    assert!(err.message.contains("--frobnicate") && err.message.contains("-n/--namespace"));
}

#[test]
fn values_are_never_inspected_as_flags() {
    // A value is a value, whatever it looks like.
    let g = get("pods -l app=kubeconfig,token=raw -n as");
    assert_eq!(
        g.label_selector.as_deref(),
        Some("app=kubeconfig,token=raw")
    );
    assert_eq!(g.namespace.as_deref(), Some("as"));
    let with_spaces: Vec<String> = ["pods", "-l", "app in (a,b), tier!=db", "--selector="]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The last -l wins, and a blank selector means none, as in kubectl.
    assert!(matches!(
        parse("get", &with_spaces),
        Ok(Command::Get(Get {
            label_selector: None,
            ..
        }))
    ));
    let with_spaces: Vec<String> = ["pods", "-l", " app in (a,b), tier!=db "]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match parse("get", &with_spaces) {
        Ok(Command::Get(g)) => {
            assert_eq!(g.label_selector.as_deref(), Some("app in (a,b), tier!=db"))
        }
        other => panic!("{other:?}"),
    }
    let g = get("pods --field-selector=metadata.name=--raw");
    assert_eq!(g.field_selector.as_deref(), Some("metadata.name=--raw"));
}

#[test]
fn version_and_cluster_info() {
    assert_eq!(
        parse("version", &[]),
        Ok(Command::Version(Version::default()))
    );
    assert_eq!(
        parse("version", &args("-o json")),
        Ok(Command::Version(Version {
            output: VersionOutput::Json
        }))
    );
    assert_eq!(
        parse("version", &args("--output=yaml")),
        Ok(Command::Version(Version {
            output: VersionOutput::Yaml
        }))
    );
    assert_eq!(
        parse("cluster-info", &[]),
        Ok(Command::ClusterInfo(ClusterInfo::default()))
    );
    assert_eq!(
        parse("cluster-info", &args("-n kube-public")),
        Ok(Command::ClusterInfo(ClusterInfo {
            namespace: Some("kube-public".into())
        }))
    );
}

#[test]
fn single_item_implied_follows_kubectl() {
    assert!(get("pod a").single_item_implied());
    assert!(get("pod/a").single_item_implied());
    assert!(!get("pod a b").single_item_implied());
    assert!(!get("pods,svc a").single_item_implied());
    assert!(!get("pods").single_item_implied());
}

// === limits ===

fn refused(command_type: &str, args: Vec<String>) -> CommandError {
    match parse(command_type, &args) {
        Err(e) => e,
        Ok(c) => panic!("{command_type} {args:?} was accepted: {c:?}"),
    }
}

fn limit(command_type: &str, args: Vec<String>) -> CommandError {
    let e = refused(command_type, args);
    assert_eq!(e.code, "limit_exceeded", "{e:?}");
    assert!(e.message.contains("kubeline's limit of"), "{}", e.message);
    e
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn argv_is_bounded_in_count_and_bytes() {
    let many = vec!["pods".to_string(); crate::limits::MAX_ARGS + 1];
    assert!(limit("get", many).message.contains("128 arguments"));
    let big = vec!["x".repeat(crate::limits::MAX_ARGV_BYTES + 1)];
    assert!(limit("get", big).message.contains("bytes"));
}

#[test]
fn names_and_types_are_bounded() {
    let mut a = vec!["pods".to_string()];
    a.extend((0..=crate::limits::MAX_NAMES).map(|i| format!("p{i}")));
    let e = limit("get", a.clone());
    assert!(e.message.contains("101 objects by name"), "{}", e.message);
    assert_eq!(e.argument.as_deref(), Some("p0"));
    limit("describe", a);
    // types × names counts every request.
    let mut a = vec!["pods,svc".to_string()];
    a.extend((0..60).map(|i| format!("p{i}")));
    limit("get", a);
    let pairs: Vec<String> = (0..=crate::limits::MAX_NAMES)
        .map(|i| format!("pod/p{i}"))
        .collect();
    limit("get", pairs);
    let types: Vec<String> = (0..=crate::limits::MAX_TYPES)
        .map(|i| format!("t{i}"))
        .collect();
    limit("get", vec![types.join(",")]);
    // At the limits, all is well.
    let mut a = vec!["pods".to_string()];
    a.extend((0..crate::limits::MAX_NAMES).map(|i| format!("p{i}")));
    assert!(parse("get", &a).is_ok());
}

#[test]
fn templates_over_a_limit_are_refused_before_queueing() {
    let deep = format!("jsonpath={}", "{range .items[*]}".repeat(7));
    let e = limit("get", owned(&["pods", "-o", &deep]));
    assert_eq!(e.argument.as_deref(), Some("--output"));
    let long = format!("jsonpath={}", "{.a}".repeat(1000));
    limit("get", owned(&["pods", "-o", &long]));
    let cols = format!("custom-columns={}", vec!["A:.a"; 33].join(","));
    limit("get", owned(&["pods", "-o", &cols]));
    let sort = format!("--sort-by=.{}", "a.".repeat(3000));
    let e = limit("get", owned(&["pods", &sort]));
    assert_eq!(e.argument.as_deref(), Some("--sort-by"));
    let sel = format!("-l=a in ({})", vec!["x"; 2100].join(","));
    let e = limit("get", owned(&["pods", &sel]));
    assert_eq!(e.argument.as_deref(), Some("--selector"));
}

#[test]
fn template_syntax_errors_are_left_for_the_agent_to_word_as_kubectl() {
    // kubectl reports these as "error parsing jsonpath …" with exit code 1; the agent does.
    for t in [
        "jsonpath={.a",
        "jsonpath={.items[?(@.x==]}",
        "custom-columns=NAME",
    ] {
        assert!(parse("get", &owned(&["pods", "-o", t])).is_ok(), "{t}");
    }
    assert!(parse("get", &owned(&["pods", "--sort-by={{"])).is_ok());
}

// === streams ===

fn stream(command: &str, s: &str) -> Command {
    parse_stream(command, &args(s)).unwrap_or_else(|e| panic!("{command} {s}: {e:?}"))
}

fn stream_err(command: &str, s: &str) -> CommandError {
    match parse_stream(command, &args(s)) {
        Ok(c) => panic!("{command} {s} was accepted as a stream: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn only_streaming_commands_stream() {
    for c in ["describe", "top", "version", "explain", "delete"] {
        let e = stream_err(c, "pods");
        assert_eq!(e.code, "not_streamable", "{c}");
        assert!(e.message.contains("POST /debug/execute"), "{}", e.message);
    }
    // The policy is parse's: forbidden flags stay forbidden in a stream.
    assert_eq!(stream_err("logs", "x -f --as=admin").code, "forbidden_flag");
    assert_eq!(stream_err("get", "pods -w --raw=/x").code, "forbidden_flag");
    assert_eq!(
        stream_err("get", "pods -w -f x.yaml").code,
        "forbidden_flag"
    );
}

#[test]
fn logs_follow_in_a_stream_only() {
    for s in [
        "x -f",
        "x --follow",
        "x -pf",
        "x --follow=true",
        "-l app=x -f",
    ] {
        let Command::Logs(l) = stream("logs", s) else {
            panic!("{s}")
        };
        assert!(l.follow, "{s}");
        assert_eq!(l.max_log_requests, DEFAULT_MAX_LOG_REQUESTS);
        let e = parse("logs", &args(s)).unwrap_err();
        assert_eq!(e.code, "unknown_flag", "{s}");
        assert!(e.message.contains("GET /debug/stream"), "{}", e.message);
    }
    let Command::Logs(l) = stream(
        "logs",
        "-f -l app=x --all-containers --prefix --max-log-requests=8 --tail=2 --since=1m -n ns",
    ) else {
        panic!()
    };
    assert!(l.follow && l.all_containers && l.prefix);
    assert_eq!(
        (l.max_log_requests, l.tail_lines, l.since_seconds),
        (8, Some(2), Some(60))
    );
    let Command::Logs(l) = stream("logs", "x -c c --since-time=2024-08-30T06:00:00Z -f") else {
        panic!()
    };
    assert_eq!(l.container.as_deref(), Some("c"));
    // Without -f a stream is a snapshot that ends; --follow=false too.
    let Command::Logs(l) = stream("logs", "x --follow=false") else {
        panic!()
    };
    assert!(!l.follow);
    assert_eq!(
        stream_err("logs", "x -f --max-log-requests=many")
            .argument
            .as_deref(),
        Some("--max-log-requests=many")
    );
    // kubectl's own checks still apply.
    assert_eq!(
        stream_err("logs", "x -f -c a --all-containers").message,
        "--all-containers=true should not be specified with container name a"
    );
    assert_eq!(stream_err("logs", "-f").code, "usage_error");
}

#[test]
fn get_watch_in_a_stream_only() {
    let watch_of = |s: &str| match stream("get", s) {
        Command::Get(g) => (g.watch, g.output_watch_events, g.output),
        other => panic!("{other:?}"),
    };
    assert_eq!(watch_of("pods -w"), (Watch::Watch, false, GetOutput::Table));
    assert_eq!(watch_of("pods --watch -o wide").0, Watch::Watch);
    assert_eq!(watch_of("pods --watch-only").0, Watch::WatchOnly);
    // --watch-only wins over --watch, as in kubectl.
    assert_eq!(watch_of("pods -w --watch-only").0, Watch::WatchOnly);
    assert_eq!(
        watch_of("deploy x -w --output-watch-events -o json"),
        (Watch::Watch, true, GetOutput::Json)
    );
    assert_eq!(watch_of("pods -w -o yaml").2, GetOutput::Yaml);
    assert_eq!(watch_of("pods -w -oname").2, GetOutput::Name);
    assert_eq!(watch_of("pods").0, Watch::No);
    assert_eq!(watch_of("pods -w=false").0, Watch::No);
    // Outside a stream nothing changed.
    for s in [
        "pods -w",
        "pods --watch",
        "pods --watch-only",
        "pods --output-watch-events",
    ] {
        let e = parse("get", &args(s)).unwrap_err();
        assert_eq!(e.code, "unknown_flag", "{s}");
        assert!(e.message.contains("GET /debug/stream"), "{}", e.message);
    }
}

#[test]
fn get_watch_usage_errors_are_kubectls() {
    let usage = |s: &str| {
        let e = stream_err("get", s);
        assert_eq!(e.code, "usage_error", "{s}: {e:?}");
        e.kubectl_error.unwrap_or_default()
    };
    assert_eq!(
        usage("pods,svc -w"),
        "error: you may only specify a single resource type\n"
    );
    assert_eq!(
        usage("pods --output-watch-events"),
        "error: --output-watch-events option can only be used with --watch or --watch-only\n"
    );
    assert_eq!(
        usage("-w"),
        "error: You must provide one or more resources by argument or filename.\nExample \
         resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   \
         '<resource> <name>'\n   '<resource>'\n"
    );
    // What a watch cannot print is refused naming the flag.
    let e = stream_err("get", "pods -w -o jsonpath={.x}");
    assert_eq!(
        (e.code, e.argument.as_deref()),
        ("unsupported_output", Some("-o"))
    );
    assert_eq!(
        stream_err("get", "pods -w --sort-by=.metadata.name")
            .argument
            .as_deref(),
        Some("--sort-by=.metadata.name")
    );
    assert_eq!(
        stream_err("get", "pods -w --limit=5").code,
        "invalid_argument"
    );
}

#[test]
fn events_and_rollout_watch_in_a_stream() {
    let Command::Events(e) = stream("events", "-w -A --types=Warning") else {
        panic!()
    };
    assert!(e.watch && e.all_namespaces);
    let Command::Events(e) = stream("events", "-n x") else {
        panic!()
    };
    assert!(!e.watch);
    assert_eq!(
        parse("events", &args("-w")).unwrap_err().code,
        "unknown_flag"
    );

    let rollout = |s: &str| match stream("rollout", s) {
        Command::Rollout(r) => (r.watch, r.timeout_ms),
        other => panic!("{other:?}"),
    };
    // kubectl watches by default.
    assert_eq!(rollout("status deploy/x"), (true, None));
    assert_eq!(rollout("status deploy/x -w"), (true, None));
    assert_eq!(rollout("status deploy/x --watch=false"), (false, None));
    assert_eq!(
        rollout("status deploy/x --timeout=90s"),
        (true, Some(90_000))
    );
    assert_eq!(rollout("status deploy/x --timeout=0"), (true, None));
    assert_eq!(rollout("history deploy/x"), (false, None));
    assert_eq!(
        stream_err("rollout", "status deploy/x --timeout=soon")
            .argument
            .as_deref(),
        Some("--timeout=soon")
    );
    // Outside a stream: a snapshot, and -w refused as before.
    match parse("rollout", &args("status deploy/x")) {
        Ok(Command::Rollout(r)) => assert!(!r.watch),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse("rollout", &args("status deploy/x -w"))
            .unwrap_err()
            .code,
        "unknown_flag"
    );
}
