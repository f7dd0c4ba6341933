//! Watches (`?watch=true`): the API server's stream of changes, one JSON event per line, read as
//! it arrives and shared by `get -w`, `events -w` and `rollout status -w`.
//!
//! A watch the server ends (its request timeout, 30 to 60 minutes by default) is started again
//! from the last resourceVersion seen, as a reflector does; kubectl's own `get -w` would simply
//! stop there. Bookmarks keep that resourceVersion current on quiet collections, so the restart
//! stays inside the server's watch window; a restart that falls outside it anyway gets the
//! server's `410 Expired`, which ends the command with kubectl's error for it.

use crate::exec::api::{self, ApiError, BodyStream};
use futures::StreamExt;
use serde_json::Value;

/// Longest watch event kubeline reads (one object, as JSON). etcd refuses objects over 1.5 MiB
/// by default; this leaves room for large custom resources and tables while bounding the
/// memory a hostile or broken answer can take.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One change.
#[derive(Debug)]
pub(crate) struct Event {
    /// `ADDED`, `MODIFIED` or `DELETED` (errors end the watch; bookmarks are not shown).
    pub kind: String,
    /// The object (or, for `as=Table`, a Table holding its row).
    pub object: Value,
    /// The event as the server wrote it, for printers that keep the server's key order.
    pub raw: Vec<u8>,
}

/// A watch of one collection, re-established from its last resourceVersion when the server
/// ends it.
pub(crate) struct Watch<'a> {
    client: &'a kube::Client,
    /// The collection path with its query (selectors), without `watch` / `resourceVersion`.
    path: String,
    accept: &'static str,
    what: String,
    resource_version: String,
    body: Option<BodyStream>,
    pending: Vec<u8>,
}

impl<'a> Watch<'a> {
    /// A watch of `path` (a collection, with its selectors in the query) from
    /// `resource_version` (`""`: from now, with the server's synthetic `ADDED` events for what
    /// exists; `"0"`: the same, served from the watch cache). Nothing is requested until
    /// [`Watch::next`].
    pub(crate) fn new(
        client: &'a kube::Client,
        path: String,
        accept: &'static str,
        what: String,
        resource_version: String,
    ) -> Self {
        Self {
            client,
            path,
            accept,
            what,
            resource_version,
            body: None,
            pending: Vec::new(),
        }
    }

    fn request_path(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("allowWatchBookmarks", "true");
        if !self.resource_version.is_empty() {
            query.append_pair("resourceVersion", &self.resource_version);
        }
        query.append_pair("watch", "true");
        let separator = if self.path.contains('?') { '&' } else { '?' };
        format!("{}{separator}{}", self.path, query.finish())
    }

    /// The next change; an `ERROR` event (a `410 Expired`, …) or a failed request is an error.
    /// Waits for ever on a quiet collection.
    pub(crate) async fn next(&mut self) -> Result<Event, ApiError> {
        // Restarts without a single event in between mean the server refuses to hold the
        // watch: give up rather than spin.
        let mut empty_restarts = 0;
        loop {
            if let Some(line) = self.take_line()? {
                if let Some(event) = self.event(line)? {
                    return Ok(event);
                }
                continue;
            }
            if self.body.is_none() {
                let path = self.request_path();
                let body =
                    api::get_stream(self.client, &path, self.accept, Some(&self.what)).await?;
                self.body = Some(body);
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.next().await {
                Some(Ok(bytes)) => {
                    empty_restarts = 0;
                    self.pending.extend_from_slice(&bytes);
                }
                Some(Err(e)) => return Err(e),
                None => {
                    // The server ended the watch (its timeout): start again from where it was.
                    self.body = None;
                    self.pending.clear();
                    empty_restarts += 1;
                    if empty_restarts > 3 {
                        return Err(ApiError::Transport(format!(
                            "the server ended the watch ({}) at once, {empty_restarts} times",
                            self.what
                        )));
                    }
                }
            }
        }
    }

    /// A whole line from what was read, if there is one.
    fn take_line(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        match self.pending.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                Ok(Some(line))
            }
            None if self.pending.len() > MAX_EVENT_BYTES => Err(ApiError::Limit(format!(
                "a watch event of more than {MAX_EVENT_BYTES} bytes; kubeline reads events of \
                 at most that size"
            ))),
            None => Ok(None),
        }
    }

    /// One line as an event; `None` for what is not shown (bookmarks, blank lines).
    fn event(&mut self, line: Vec<u8>) -> Result<Option<Event>, ApiError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let mut parsed: Value = serde_json::from_slice(&line).map_err(|e| {
            ApiError::Transport(format!("cannot decode the server's watch event: {e}"))
        })?;
        let kind = parsed
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = parsed
            .get_mut("object")
            .map(Value::take)
            .unwrap_or_default();
        if kind == "ERROR" {
            return Err(api::status_of(500, &object));
        }
        if let Some(rv) = resource_version(&object) {
            self.resource_version = rv.to_string();
        }
        if kind == "BOOKMARK" {
            return Ok(None);
        }
        Ok(Some(Event {
            kind,
            object,
            raw: line,
        }))
    }
}

/// The resourceVersion an event's object carries: its own, or (a Table) its row's object's.
fn resource_version(object: &Value) -> Option<&str> {
    let own = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty());
    own.or_else(|| {
        object
            .pointer("/rows/0/object/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// An API server stand-in on loopback: each watch request gets the next canned body (and
    /// the connection ends with it); the queries asked are kept.
    async fn server(
        bodies: Vec<&'static str>,
    ) -> (kube::Client, Arc<Mutex<Vec<HashMap<String, String>>>>) {
        use axum::extract::{Query, State};
        let asked: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let state = (Arc::new(Mutex::new(bodies)), asked.clone());
        type Shared = (
            Arc<Mutex<Vec<&'static str>>>,
            Arc<Mutex<Vec<HashMap<String, String>>>>,
        );
        let app = axum::Router::new()
            .route(
                "/api/v1/namespaces/ns/pods",
                axum::routing::get(
                    |State((bodies, asked)): State<Shared>,
                     Query(q): Query<HashMap<String, String>>| async move {
                        asked.lock().unwrap().push(q);
                        let mut bodies = bodies.lock().unwrap();
                        if bodies.is_empty() {
                            String::new()
                        } else {
                            bodies.remove(0).to_string()
                        }
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(url.parse().unwrap());
        (kube::Client::try_from(config).unwrap(), asked)
    }

    #[tokio::test]
    async fn a_watch_the_server_ends_starts_again_where_it_was_and_410_ends_it() {
        let (client, asked) = server(vec![
            "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"6\"}}}\n",
            // A quiet collection: only a bookmark moves the resourceVersion on.
            "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n",
            "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"10\"}}}\n\
             {\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\",\
             \"message\":\"too old resource version: 10 (20)\"}}\n",
        ])
        .await;
        let mut watch = Watch::new(
            &client,
            "/api/v1/namespaces/ns/pods?labelSelector=app%3Dx".into(),
            api::ACCEPT_JSON,
            "get pods".into(),
            "5".into(),
        );
        let first = watch.next().await.unwrap();
        assert_eq!(
            (first.kind.as_str(), &first.object["metadata"]["name"]),
            ("ADDED", &json!("a"))
        );
        let second = watch.next().await.unwrap();
        assert_eq!(second.kind, "MODIFIED");
        let e = watch.next().await.unwrap_err();
        assert_eq!(
            e.kubectl_message(),
            "Error from server (Expired): too old resource version: 10 (20)"
        );
        let asked = asked.lock().unwrap();
        let versions: Vec<&str> = asked
            .iter()
            .map(|q| q["resourceVersion"].as_str())
            .collect();
        assert_eq!(versions, ["5", "6", "9"]);
        assert!(
            asked
                .iter()
                .all(|q| q["watch"] == "true" && q["labelSelector"] == "app=x")
        );
        assert!(asked.iter().all(|q| q["allowWatchBookmarks"] == "true"));
    }

    #[tokio::test]
    async fn a_server_that_keeps_ending_the_watch_at_once_is_an_error() {
        let (client, asked) = server(vec![]).await;
        let mut watch = Watch::new(
            &client,
            "/api/v1/namespaces/ns/pods".into(),
            api::ACCEPT_JSON,
            "get pods".into(),
            String::new(),
        );
        let e = watch.next().await.unwrap_err();
        assert!(e.kubectl_message().contains("ended the watch"), "{e:?}");
        assert_eq!(asked.lock().unwrap().len(), 4);
        // From now, without a resourceVersion.
        assert!(!asked.lock().unwrap()[0].contains_key("resourceVersion"));
    }

    #[test]
    fn resource_versions_come_from_objects_or_table_rows() {
        assert_eq!(
            resource_version(&json!({"metadata": {"resourceVersion": "7"}})),
            Some("7")
        );
        assert_eq!(
            resource_version(&json!({"kind": "Table", "metadata": {},
                "rows": [{"object": {"metadata": {"resourceVersion": "9"}}}]})),
            Some("9")
        );
        assert_eq!(resource_version(&json!({"metadata": {}})), None);
    }
}
