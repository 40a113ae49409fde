//! An in-memory stand-in for the Kubernetes API that records every request, for tests that
//! count what the controller reads and writes. It keeps objects by URL path, answers GET for
//! objects and collections, and stores server-side-apply PATCHes by merging them in. The real
//! API server is exercised by the e2e suite; this one exists to count requests exactly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::Client;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
}

#[derive(Default)]
pub struct FakeApi {
    objects: Mutex<BTreeMap<String, Value>>,
    requests: Mutex<Vec<Recorded>>,
    resource_version: Mutex<u64>,
}

impl FakeApi {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn client(self: &Arc<Self>) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(request).await) }
        });
        Client::new(service, "default")
    }

    /// Puts an object at its API path, as if another controller had created it.
    pub fn insert(&self, path: &str, object: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert(path.to_string(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Changes a stored object in place.
    pub fn update(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut objects = self.objects.lock().unwrap();
        let object = objects
            .get_mut(path)
            .unwrap_or_else(|| panic!("no object at {path}"));
        change(object);
    }

    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    async fn handle(&self, request: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_string();
        self.requests.lock().unwrap().push(Recorded {
            method: parts.method.clone(),
            path: path.clone(),
        });
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match parts.method {
            Method::GET if is_collection(&path) => {
                let items: Vec<Value> = self
                    .objects
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(p, _)| {
                        p.strip_prefix(&path)
                            .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                respond(
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            Method::GET => match self.get(&path) {
                Some(object) => respond(StatusCode::OK, object),
                None => not_found(&path),
            },
            Method::PATCH => {
                let (target, is_status) = match path.strip_suffix("/status") {
                    Some(object) => (object.to_string(), true),
                    None => (path.clone(), false),
                };
                if is_status && self.get(&target).is_none() {
                    return not_found(&path);
                }
                let version = self.next_version();
                let mut objects = self.objects.lock().unwrap();
                let stored = objects.entry(target).or_insert_with(|| json!({}));
                merge(stored, &body);
                stored["metadata"]["resourceVersion"] = json!(version.to_string());
                respond(StatusCode::OK, stored.clone())
            }
            Method::POST => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("generated")
                    .to_string();
                self.insert(&format!("{path}/{name}"), body.clone());
                respond(StatusCode::CREATED, body)
            }
            Method::PUT => {
                self.insert(&path, body.clone());
                respond(StatusCode::OK, body)
            }
            _ => respond(StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }

    fn next_version(&self) -> u64 {
        let mut version = self.resource_version.lock().unwrap();
        *version += 1;
        *version
    }
}

/// `/api/v1/namespaces/<ns>/<plural>` and `/apis/<group>/<version>/namespaces/<ns>/<plural>`.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    segments.len() >= 3 && segments[segments.len() - 3] == "namespaces"
}

/// Merges like server-side apply does for the fields a test cares about: maps merge, every
/// other value is replaced.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}
