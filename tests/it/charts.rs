//! The Helm charts: they lint, refuse incomplete values with a clear message, validate against
//! the test bed's API server, and the agent's ClusterRole grants exactly the read-only rules the
//! bed's `kubeline-reader` identity has (the identity every command test runs as).

use std::collections::BTreeSet;

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::support::bed::{self, helm};

const AGENT_VALUES: &str = "brokerUrl=https://broker.example:8080,clusterId=prod-eu,token=t0ken";
const BROKER_VALUES: &str = "apiKeys={admin=k},agentTokens={prod-eu=t0ken}";

/// Rules as a set of (group, resource, verb) triples, whatever their grouping.
fn triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_sequence().expect("rules is a list") {
        let list = |k: &str| -> Vec<String> {
            rule[k].as_sequence().map_or_else(Vec::new, |s| {
                s.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
            })
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn charts_lint() {
    for (chart, values) in [
        ("charts/kubeline-agent", AGENT_VALUES),
        ("charts/kubeline-broker", BROKER_VALUES),
    ] {
        let (ok, out, err) = helm(&["lint", chart, "--strict", "--set", values]);
        assert!(ok, "helm lint {chart}:\n{out}{err}");
    }
}

#[test]
fn incomplete_values_are_refused_with_a_reason() {
    let cases = [
        (
            "charts/kubeline-agent",
            "clusterId=c,token=t",
            "set brokerUrl",
        ),
        (
            "charts/kubeline-agent",
            "brokerUrl=http://b,token=t",
            "set clusterId",
        ),
        (
            "charts/kubeline-agent",
            "brokerUrl=http://b,clusterId=c",
            "set token",
        ),
        ("charts/kubeline-broker", "agentTokens={c=t}", "set apiKeys"),
        (
            "charts/kubeline-broker",
            "apiKeys={admin=k},replicas=2",
            "replicas > 1 needs redisUrl",
        ),
        (
            "charts/kubeline-broker",
            "apiKeys={admin=k},jwt.issuer=https://idp",
            "jwt.issuer needs jwt.audience",
        ),
        (
            "charts/kubeline-broker",
            "apiKeys={admin=k},redisUrl=redis://r:6379,redisCaSecret=redis-ca",
            "redisCaSecret is the CA of a Redis over TLS",
        ),
    ];
    for (chart, values, expected) in cases {
        let (ok, _, err) = helm(&["template", "x", chart, "--set", values]);
        assert!(!ok, "{chart} with {values} should fail");
        assert!(
            err.contains(expected),
            "{chart} with {values}: expected {expected:?} in {err}"
        );
    }
}

#[test]
fn agent_role_is_the_reader_role() {
    let (ok, out, err) = helm(&[
        "template",
        "kl",
        "charts/kubeline-agent",
        "--set",
        AGENT_VALUES,
    ]);
    assert!(ok, "{err}");
    let role = serde_yaml::Deserializer::from_str(&out)
        .map(|d| Value::deserialize(d).unwrap())
        .find(|doc| doc["kind"] == "ClusterRole")
        .expect("the chart renders a ClusterRole");
    let chart_rules = triples(&role["rules"]);

    let reader: Value =
        serde_yaml::from_str(&std::fs::read_to_string("testbed/rbac/reader.yaml").unwrap())
            .unwrap();
    let mut bed_rules = triples(&reader["rules"]);
    // The bed adds its own CRD group, as an operator would with `extraRules`.
    bed_rules.retain(|(group, _, _)| group != "testbed.kubeline.dev");
    assert_eq!(chart_rules, bed_rules);
    assert!(
        chart_rules
            .iter()
            .all(|(_, _, verb)| ["get", "list", "watch"].contains(&verb.as_str()))
    );
    assert!(
        !chart_rules
            .iter()
            .any(|(_, resource, _)| resource == "secrets")
    );
}

#[test]
fn charts_validate_against_the_api_server() {
    let kubeconfig = bed::var("TESTBED_ADMIN_KUBECONFIG");
    for (chart, values) in [
        ("charts/kubeline-agent", AGENT_VALUES.to_owned()),
        (
            "charts/kubeline-agent",
            format!("{AGENT_VALUES},caSecret=broker-ca"),
        ),
        (
            "charts/kubeline-broker",
            format!("{BROKER_VALUES},replicas=3,redisUrl=redis://redis:6379/0"),
        ),
        (
            "charts/kubeline-broker",
            format!(
                "{BROKER_VALUES},replicas=3,redisUrl=rediss+cluster://redis:6379,\
                 redisCaSecret=redis-ca,tls.secretName=broker-tls"
            ),
        ),
        (
            "charts/kubeline-broker",
            format!(
                "{BROKER_VALUES},tls.secretName=broker-tls,jwt.issuer=https://idp,\
                 jwt.audience=kubeline,jwt.grants={{group:sre=admin@*}},rateLimits.execute=120"
            ),
        ),
    ] {
        let (ok, out, err) = helm(&[
            "install",
            "kl-dry-run",
            chart,
            "--namespace",
            "default",
            "--dry-run=server",
            "--kubeconfig",
            &kubeconfig,
            "--set",
            &values,
        ]);
        assert!(ok, "helm install --dry-run=server {chart}:\n{out}{err}");
    }
}
