//! `api-resources` (kubectl `pkg/cmd/apiresources`).
//!
//! kubectl asks `ServerPreferredResources`: every group/version discovery serves (stale ones
//! left out), each resource once per group, in the group's preferred version unless only an
//! older version has it ([`ServerResources::preferred`]).

use crate::exec::api::discovery::{Located, ServerResources};
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::json::{self as gojson, Ordered};
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_shared::command::{ApiResources, ApiResourcesOutput, ApiResourcesSort};

pub(crate) async fn run(ex: &Executor, cmd: &ApiResources) -> Outcome {
    match ex.server_resources().await {
        Ok(resources) => Outcome {
            output: render(&resources, cmd),
            error: None,
            exit_code: 0,
        },
        Err(e) => Outcome::failed(e.kubectl_message()),
    }
}

/// Filters, sorts and prints the resources as kubectl's api-resources printers do.
fn render(resources: &ServerResources, cmd: &ApiResources) -> String {
    let has_all = |have: &[String], want: &[String]| want.iter().all(|w| have.contains(w));
    let mut rows: Vec<Located<'_>> = resources
        .preferred()
        .into_iter()
        .filter(|l| !l.resource.verbs.is_empty())
        .filter(|l| cmd.api_group.as_deref().is_none_or(|g| g == l.group))
        .filter(|l| cmd.namespaced.is_none_or(|n| n == l.resource.namespaced))
        .filter(|l| has_all(&l.resource.verbs, &cmd.verbs))
        .filter(|l| has_all(&l.resource.categories, &cmd.categories))
        .collect();
    // sort.Stable by the chosen field, ties broken by name.
    rows.sort_by(|a, b| {
        let key = |l: &Located<'_>| match cmd.sort_by {
            ApiResourcesSort::Group => l.group.to_string(),
            ApiResourcesSort::Name => l.resource.name.clone(),
            ApiResourcesSort::Kind => l.resource.kind.clone(),
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.resource.name.cmp(&b.resource.name))
    });
    if matches!(
        cmd.output,
        ApiResourcesOutput::Json | ApiResourcesOutput::Yaml | ApiResourcesOutput::Kyaml
    ) {
        return print_list(&rows, cmd.output);
    }
    if cmd.output == ApiResourcesOutput::Name {
        let mut out = String::new();
        for l in &rows {
            out.push_str(&l.resource.name);
            if !l.group.is_empty() {
                out.push('.');
                out.push_str(l.group);
            }
            out.push('\n');
        }
        return out;
    }
    let wide = cmd.output == ApiResourcesOutput::Wide;
    let mut w = TabWriter::new();
    if !cmd.no_headers {
        w.write(if wide {
            "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\tVERBS\tCATEGORIES\n"
        } else {
            "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\n"
        });
    }
    for l in &rows {
        let r = l.resource;
        let gv = if l.group.is_empty() {
            l.version.to_string()
        } else {
            format!("{}/{}", l.group, l.version)
        };
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}",
            r.name,
            r.short_names.join(","),
            gv,
            r.namespaced,
            r.kind
        );
        if wide {
            line.push_str(&format!(
                "\t{}\t{}",
                r.verbs.join(","),
                r.categories.join(",")
            ));
        }
        line.push('\n');
        w.write(&line);
    }
    w.flush();
    w.take_output()
}

/// `-o json|yaml|kyaml`: the flattened `APIResourceList` kubectl builds (no `groupVersion`, each
/// resource with the `group` and `version` it was listed in), as its JSON printer writes a Go
/// struct (fields in struct order, `omitempty` ones left out when empty) or as YAML. With
/// nothing left after filtering, the list's `resources` is Go's nil slice: `null`.
fn print_list(rows: &[Located<'_>], output: ApiResourcesOutput) -> String {
    let text = |s: &str| Ordered::String(s.to_string());
    let strings = |v: &[String]| Ordered::Array(v.iter().map(|s| text(s)).collect());
    let resources: Vec<Ordered> = rows
        .iter()
        .map(|l| {
            let r = l.resource;
            let mut fields = vec![
                ("name".to_string(), text(&r.name)),
                ("singularName".to_string(), text(&r.singular)),
                ("namespaced".to_string(), Ordered::Bool(r.namespaced)),
            ];
            if !l.group.is_empty() {
                fields.push(("group".into(), text(l.group)));
            }
            if !l.version.is_empty() {
                fields.push(("version".into(), text(l.version)));
            }
            fields.push(("kind".into(), text(&r.kind)));
            fields.push(("verbs".into(), strings(&r.verbs)));
            if !r.short_names.is_empty() {
                fields.push(("shortNames".into(), strings(&r.short_names)));
            }
            if !r.categories.is_empty() {
                fields.push(("categories".into(), strings(&r.categories)));
            }
            Ordered::Object(fields)
        })
        .collect();
    let list = Ordered::Object(vec![
        ("kind".into(), text("APIResourceList")),
        ("apiVersion".into(), text("v1")),
        ("groupVersion".into(), text("")),
        (
            "resources".into(),
            if resources.is_empty() {
                Ordered::Null
            } else {
                Ordered::Array(resources)
            },
        ),
    ]);
    match output {
        ApiResourcesOutput::Json => {
            let mut out = String::new();
            gojson::write_ordered(&mut out, &list, "    ", 0);
            out.push('\n');
            out
        }
        ApiResourcesOutput::Kyaml => goyaml::to_kyaml(&list),
        _ => goyaml::to_string(&list.to_value()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::api::discovery::tests::canned_server;

    #[test]
    fn tables_print_like_kubectl() {
        let s = canned_server();
        let cmd = ApiResources::default();
        assert_eq!(
            render(&s, &cmd),
            "NAME                       SHORTNAMES   APIVERSION       NAMESPACED   KIND\n\
             bindings                                v1               true         Binding\n\
             componentstatuses          cs           v1               false        ComponentStatus\n\
             nodes                      no           v1               false        Node\n\
             pods                       po           v1               true         Pod\n\
             deployments                deploy       apps/v1          true         Deployment\n\
             horizontalpodautoscalers   hpa          autoscaling/v2   true         HorizontalPodAutoscaler\n\
             olds                                    autoscaling/v1   true         Old\n"
        );
        let cmd = ApiResources {
            output: ApiResourcesOutput::Name,
            namespaced: Some(true),
            verbs: vec!["list".into()],
            sort_by: ApiResourcesSort::Kind,
            ..Default::default()
        };
        assert_eq!(
            render(&s, &cmd),
            "deployments.apps\nhorizontalpodautoscalers.autoscaling\npods\n"
        );
    }
}
