//! apimachinery's label selectors as strings (`k8s.io/apimachinery/pkg/labels` and
//! `metav1.LabelSelectorAsSelector`), over the JSON form of a `metav1.LabelSelector`.

use serde_json::Value;

/// `metav1.LabelSelectorAsSelector(s).String()`: one requirement per `matchLabels` entry
/// (`k=v`) and per `matchExpressions` entry (`k in (a,b)`, `k notin (a,b)`, `k`, `!k`), values
/// sorted, requirements stably sorted by key; empty for a missing or empty selector. An
/// operator apimachinery does not know is its error, `"Op" is not a valid label selector
/// operator` (the API server refuses such selectors, so objects do not carry them).
pub fn selector_string(selector: Option<&Value>) -> Result<String, String> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(&str, String)> = Vec::new();
    for (key, value) in selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        requirements.push((key, format!("{key}={}", value.as_str().unwrap_or_default())));
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let operator = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = match operator {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        requirements.push((key, text));
    }
    // Go sorts the requirements by key with a stable sort.
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// `labels.SelectorFromSet(set).String()`: `k=v` pairs sorted by key, joined by commas; empty
/// for a missing or empty map.
pub fn set_string(set: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = set
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort_unstable();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_print_like_apimachinery() {
        let s = json!({
            "matchLabels": {"tier": "x", "app": "x"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "env", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "a", "operator": "NotIn", "values": ["b"]},
            ],
        });
        assert_eq!(
            selector_string(Some(&s)).unwrap(),
            "a notin (b),app=x,!env,tier=x,tier in (api,web),zone"
        );
        assert_eq!(selector_string(None).unwrap(), "");
        assert_eq!(selector_string(Some(&json!({}))).unwrap(), "");
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(
            selector_string(Some(&bad)).unwrap_err(),
            "\"Near\" is not a valid label selector operator"
        );
    }

    #[test]
    fn sets_print_sorted() {
        assert_eq!(set_string(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(set_string(None), "");
    }
}
