//! `cluster-info`: kubectl's summary of where the control plane and cluster services run.

use crate::exec::api;
use crate::exec::{Executor, Outcome};
use kubeline_shared::command::ClusterInfo;
use serde_json::Value;

const DUMP_HINT: &str =
    "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n";

pub(crate) async fn run(ex: &Executor, c: &ClusterInfo) -> Outcome {
    let namespace = c.namespace.as_deref().unwrap_or("kube-system");
    let path = format!(
        "/api/v1/namespaces/{}/services?labelSelector={}",
        api::segment(namespace),
        api::segment("kubernetes.io/cluster-service=true")
    );
    match api::get(&ex.client, &path, api::ACCEPT_JSON, Some("get services")).await {
        Ok(r) => {
            let mut output = render(&ex.server_url, &r.body);
            output.push_str(DUMP_HINT);
            let warnings: String = r
                .warnings
                .iter()
                .map(|w| format!("Warning: {w}\n"))
                .collect();
            Outcome {
                output,
                error: (!warnings.is_empty()).then_some(warnings),
                exit_code: 0,
            }
        }
        Err(e) => Outcome {
            output: DUMP_HINT.to_string(),
            error: Some(format!("{}\n", e.kubectl_message())),
            exit_code: 1,
        },
    }
}

/// The control plane line and one line per cluster service, as kubectl prints them (no colour).
fn render(server: &str, services: &Value) -> String {
    let mut out = format!("Kubernetes control plane is running at {server}\n");
    for svc in services
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let meta = &svc["metadata"];
        let name = meta["name"].as_str().unwrap_or_default();
        let namespace = meta["namespace"].as_str().unwrap_or_default();
        let ports: Vec<&Value> = svc["spec"]["ports"]
            .as_array()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let ingress = svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .and_then(|i| i.first());
        let link = match ingress {
            Some(ing) => {
                let ip = match ing["ip"].as_str().unwrap_or_default() {
                    "" => ing["hostname"].as_str().unwrap_or_default(),
                    ip => ip,
                };
                ports
                    .iter()
                    .map(|p| format!("http://{ip}:{} ", p["port"].as_i64().unwrap_or(0)))
                    .collect()
            }
            None => {
                let mut target = name.to_string();
                if let Some(port) = ports.first() {
                    let port_name = port["name"].as_str().unwrap_or_default();
                    let https = port_name == "https" || port["port"].as_i64() == Some(443);
                    target = match (https, port_name.is_empty()) {
                        (true, _) => format!("https:{name}:{port_name}"),
                        (false, false) => format!("{name}:{port_name}"),
                        (false, true) => name.to_string(),
                    };
                }
                format!("{server}/api/v1/namespaces/{namespace}/services/{target}/proxy")
            }
        };
        let shown = match meta["labels"]["kubernetes.io/name"].as_str() {
            Some(n) if !n.is_empty() => n,
            _ => name,
        };
        out.push_str(&format!("{shown} is running at {link}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_are_listed_like_kubectl() {
        let services = json!({"items": [
            {"metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"kubernetes.io/name": "CoreDNS"}},
             "spec": {"ports": [{"name": "dns", "port": 53}, {"name": "dns-tcp", "port": 53}]}, "status": {}},
            {"metadata": {"name": "metrics", "namespace": "kube-system"},
             "spec": {"ports": [{"name": "", "port": 443}]}, "status": {}},
            {"metadata": {"name": "lb", "namespace": "kube-system"},
             "spec": {"ports": [{"port": 80}, {"port": 81}]}, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}},
        ]});
        assert_eq!(
            render("https://10.0.0.1:6443", &services),
            "Kubernetes control plane is running at https://10.0.0.1:6443\n\
             CoreDNS is running at https://10.0.0.1:6443/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n\
             metrics is running at https://10.0.0.1:6443/api/v1/namespaces/kube-system/services/https:metrics:/proxy\n\
             lb is running at http://lb.example.com:80 http://lb.example.com:81 \n"
        );
    }
}
