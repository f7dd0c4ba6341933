//! kubectl's `PrefixWriter` over a Go `text/tabwriter`, and the small formatting helpers every
//! describer shares (`describe.go`: `printLabelsMultiline`, `printAnnotationsMultiline`,
//! `DescribeEvents`, RFC 1123Z times, label selectors, ...).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time};

use kubeline_printers::go::labels;
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::table::human_duration;

/// The annotation kubectl never prints (`corev1.LastAppliedConfigAnnotation`).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `maxAnnotationLen`.
const MAX_ANNOTATION_LEN: usize = 140;

/// A `PrefixWriter` (two spaces per level) writing into the tab writer kubectl's
/// `tabbedString` builds: minwidth 0, padding 2, pad character ' ', no flags; or, made with
/// [`Writer::raw`], straight into a buffer with the tabs left in (as `printTemplate` of
/// `rollout history --revision` does).
pub(crate) struct Writer {
    sink: Sink,
    /// Extra levels added to every write (`NewNestedPrefixWriter`).
    pub(crate) indent: usize,
    /// The time ages are measured against.
    pub(crate) now: DateTime<Utc>,
}

/// Where a [`Writer`]'s text goes.
enum Sink {
    Tabbed(TabWriter),
    Raw(String),
}

impl Writer {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        Self {
            sink: Sink::Tabbed(TabWriter::with_layout(0, 2)),
            indent: 0,
            now,
        }
    }

    /// `NewPrefixWriter` over a plain buffer: no alignment, tabs printed as they are.
    pub(crate) fn raw(now: DateTime<Utc>) -> Self {
        Self {
            sink: Sink::Raw(String::new()),
            indent: 0,
            now,
        }
    }

    /// `Write(level, ...)`: the text after `2 × level` spaces, with terminal escapes defused.
    pub(crate) fn write(&mut self, level: usize, text: &str) {
        let mut s = "  ".repeat(level + self.indent);
        s.push_str(text);
        match &mut self.sink {
            Sink::Tabbed(tw) => tw.write(&escape(&s)),
            Sink::Raw(buf) => buf.push_str(&escape(&s)),
        }
    }

    /// `WriteLine(text)`: the text and a newline (at the nested indent, if any).
    pub(crate) fn line(&mut self, text: &str) {
        self.write(0, &format!("{text}\n"));
    }

    /// `Flush()`: lays out everything written so far.
    pub(crate) fn flush(&mut self) {
        if let Sink::Tabbed(tw) = &mut self.sink {
            tw.flush();
        }
    }

    /// The finished text.
    pub(crate) fn finish(self) -> String {
        match self.sink {
            Sink::Tabbed(mut tw) => {
                tw.flush();
                tw.take_output()
            }
            Sink::Raw(buf) => buf,
        }
    }

    /// `translateTimestampSince`.
    pub(crate) fn since(&self, t: Option<&Time>) -> String {
        match t {
            None => "<unknown>".into(),
            Some(t) => human_duration(self.now.signed_duration_since(chrono_time(&t.0))),
        }
    }

    fn since_micro(&self, t: Option<&MicroTime>) -> String {
        match t {
            None => "<unknown>".into(),
            Some(t) => human_duration(self.now.signed_duration_since(chrono_time(&t.0))),
        }
    }
}

/// `printers.WriteEscaped`.
fn escape(s: &str) -> String {
    if s.contains(['\u{1b}', '\r']) {
        s.replace('\u{1b}', "^[").replace('\r', "\\r")
    } else {
        s.to_string()
    }
}

pub(crate) fn chrono_time(t: &k8s_openapi::jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// `Time.Format(time.RFC1123Z)` in UTC; Go's zero time when unset.
pub(crate) fn rfc1123z(t: Option<&Time>) -> String {
    match t {
        None => "Mon, 01 Jan 0001 00:00:00 +0000".into(),
        Some(t) => chrono_time(&t.0)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
    }
}

/// Go's `%t`/`%v` of a bool.
pub(crate) fn go_bool(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `printBool`: `True`/`False`.
pub(crate) fn print_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `printBoolPtr`.
pub(crate) fn print_bool_ptr(b: Option<bool>) -> &'static str {
    b.map_or("<unset>", print_bool)
}

/// `stringOrNone`.
pub(crate) fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub(crate) fn go_strings(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted, or `<none>`.
pub(crate) fn format_labels(m: Option<&BTreeMap<String, String>>) -> String {
    let s = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if s.is_empty() { "<none>".into() } else { s }
}

/// `Name` and `Namespace` lines of a namespaced object.
pub(crate) fn name_namespace(w: &mut Writer, meta: &ObjectMeta) {
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    w.write(
        0,
        &format!(
            "Namespace:\t{}\n",
            meta.namespace.as_deref().unwrap_or_default()
        ),
    );
}

/// `metav1.LabelSelectorAsSelector(s).String()` ([`labels::selector_string`]); empty for a
/// nil or empty selector, `<error>` for one apimachinery cannot read.
pub(crate) fn selector_string(s: Option<&LabelSelector>) -> String {
    let value = s.and_then(|s| serde_json::to_value(s).ok());
    labels::selector_string(value.as_ref()).unwrap_or_else(|_| "<error>".into())
}

/// `metav1.FormatLabelSelector`: like [`selector_string`], `<none>` when empty.
pub(crate) fn format_label_selector(s: Option<&LabelSelector>) -> String {
    let text = selector_string(s);
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// `printLabelsMultilineWithIndent`.
pub(crate) fn labels_multiline_indent(
    w: &mut Writer,
    initial_indent: &str,
    title: &str,
    inner_indent: &str,
    labels: Option<&BTreeMap<String, String>>,
) {
    w.write(0, &format!("{initial_indent}{title}:{inner_indent}"));
    let labels: Vec<(&String, &String)> = labels.into_iter().flatten().collect();
    if labels.is_empty() {
        w.line("<none>");
        return;
    }
    for (i, (k, v)) in labels.into_iter().enumerate() {
        if i != 0 {
            w.write(0, initial_indent);
            w.write(0, inner_indent);
        }
        w.write(0, &format!("{k}={v}\n"));
    }
}

/// `printLabelsMultiline`.
pub(crate) fn labels_multiline(
    w: &mut Writer,
    title: &str,
    labels: Option<&BTreeMap<String, String>>,
) {
    labels_multiline_indent(w, "", title, "\t", labels);
}

/// `printAnnotationsMultiline`: sorted, the last-applied annotation left out, long or
/// multi-line values on their own lines, each line cut at 138 bytes.
pub(crate) fn annotations_multiline(
    w: &mut Writer,
    title: &str,
    annotations: Option<&BTreeMap<String, String>>,
) {
    w.write(0, &format!("{title}:\t"));
    let keys: Vec<(&String, &String)> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .collect();
    if keys.is_empty() {
        w.line("<none>");
        return;
    }
    let indent = "\t";
    for (i, (key, value)) in keys.into_iter().enumerate() {
        if i != 0 {
            w.write(0, indent);
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.write(0, &format!("{key}:\n"));
            for s in value.split('\n') {
                w.write(
                    0,
                    &format!("{indent}  {}\n", shorten(s, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.write(0, &format!("{key}: {value}\n"));
        }
    }
}

/// `shorten`: cut at a byte count (Go slices bytes; a cut inside a character is kept lossy).
fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let bytes = &s.as_bytes()[..max];
        format!("{}...", String::from_utf8_lossy(bytes))
    } else {
        s.to_string()
    }
}

/// `printTaintsMultilineWithIndent` (sorted by effect, then key).
pub(crate) fn taints_multiline(w: &mut Writer, title: &str, taints: Option<&Vec<Taint>>) {
    w.write(0, &format!("{title}:\t"));
    let mut taints: Vec<&Taint> = taints.into_iter().flatten().collect();
    if taints.is_empty() {
        w.line("<none>");
        return;
    }
    taints.sort_by_key(|t| format!("{},{}", t.effect, t.key));
    for (i, t) in taints.into_iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        // `Taint.ToString`.
        let text = match t.value.as_deref() {
            Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
            _ if t.effect.is_empty() => t.key.clone(),
            _ => format!("{}:{}", t.key, t.effect),
        };
        w.write(0, &format!("{text}\n"));
    }
}

/// `printTolerationsMultilineWithIndent` (sorted by key).
pub(crate) fn tolerations_multiline(
    w: &mut Writer,
    title: &str,
    tolerations: Option<&Vec<Toleration>>,
) {
    w.write(0, &format!("{title}:\t"));
    let mut list: Vec<&Toleration> = tolerations.into_iter().flatten().collect();
    if list.is_empty() {
        w.line("<none>");
        return;
    }
    list.sort_by(|a, b| a.key.cmp(&b.key));
    for (i, t) in list.into_iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let key = t.key.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        let effect = t.effect.as_deref().unwrap_or_default();
        let mut s = key.to_string();
        if !value.is_empty() {
            s.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            s.push_str(&format!(":{effect}"));
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                s.push_str(" op=Exists");
            } else {
                s.push_str("op=Exists");
            }
        }
        if let Some(secs) = t.toleration_seconds {
            s.push_str(&format!(" for {secs}s"));
        }
        w.write(0, &format!("{s}\n"));
    }
}

/// `DescribeEvents`: `Events:  <none>`, or the events table sorted by last timestamp.
pub(crate) fn describe_events(w: &mut Writer, events: &[Event]) {
    if events.is_empty() {
        w.write(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    let mut events: Vec<&Event> = events.iter().collect();
    // SortableEvents: by lastTimestamp (a zero time sorts first).
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.write(1, "----\t------\t----\t----\t-------\n");
    for e in events {
        let first = if e.event_time.is_some() {
            w.since_micro(e.event_time.as_ref())
        } else {
            w.since(e.first_timestamp.as_ref())
        };
        let count = e.count.unwrap_or(0);
        let interval = if let Some(series) = &e.series {
            format!(
                "{} (x{} over {first})",
                w.since_micro(series.last_observed_time.as_ref()),
                series.count.unwrap_or(0)
            )
        } else if count > 1 {
            format!(
                "{} (x{count} over {first})",
                w.since(e.last_timestamp.as_ref())
            )
        } else {
            first
        };
        let source = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        let mut message = e.message.as_deref().unwrap_or_default().trim().to_string();
        if let Some(fp) = e
            .involved_object
            .field_path
            .as_deref()
            .filter(|f| !f.is_empty())
        {
            message = format!("{fp}: {message}");
        }
        w.write(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{message}\n",
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn labels_and_annotations_align() {
        let mut w = Writer::new(now());
        w.write(0, "Name:\tx\n");
        let labels = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        labels_multiline(&mut w, "Labels", Some(&labels));
        let mut ann = BTreeMap::from([(LAST_APPLIED.to_string(), "{}".to_string())]);
        annotations_multiline(&mut w, "Annotations", Some(&ann));
        ann.insert("long".into(), "x".repeat(150));
        ann.insert("multi".into(), "l1\nl2\n".into());
        annotations_multiline(&mut w, "Annotations", Some(&ann));
        assert_eq!(
            w.finish(),
            format!(
                "Name:         x\nLabels:       a=1\n              b=2\nAnnotations:  <none>\n\
                 Annotations:  long:\n                {}...\n              multi:\n                l1\n                l2\n",
                "x".repeat(138)
            )
        );
    }

    #[test]
    fn selectors_print_like_apimachinery() {
        let s = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "x".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "api".into()]),
                },
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(Some(&s)), "app=x,!env,tier in (api,web)");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn times_are_rfc1123z() {
        let t = Time("2026-11-23T00:06:00Z".parse().unwrap());
        assert_eq!(rfc1123z(Some(&t)), "Mon, 23 Nov 2026 00:06:00 +0000");
        assert_eq!(rfc1123z(None), "Mon, 01 Jan 0001 00:00:00 +0000");
    }

    #[test]
    fn events_table() {
        let ev: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container ",
            "count": 27, "firstTimestamp": "2026-11-23T00:46:00Z", "lastTimestamp": "2026-11-23T00:58:53Z",
            "source": {"component": "kwok_controller"}
        }))
        .unwrap();
        let mut w = Writer::new(now());
        w.write(0, "Tolerations:\t<none>\n");
        describe_events(&mut w, &[ev]);
        assert_eq!(
            w.finish(),
            "Tolerations:  <none>\nEvents:\n  Type     Reason   Age                 From             Message\n  \
             ----     ------   ----                ----             -------\n  \
             Warning  BackOff  67s (x27 over 14m)  kwok_controller  Back-off restarting failed container\n"
        );
    }
}
