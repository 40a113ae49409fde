//! The CRD's schema, evaluated the way the API server does on `kubectl apply`: defaults first,
//! then the structural OpenAPI checks (types, bounds, enums, unknown fields as kubectl's strict
//! field validation reports them), then the CEL `x-kubernetes-validations` rules, including the
//! transition rules that compare an update with the stored object. The OpenAPI part runs on the
//! `jsonschema` crate and the CEL part on `kube-cel`; the real API server checks the same
//! examples in the e2e suite.

mod support;

use serde_json::{json, Map, Value};

/// The `openAPIV3Schema` of the generated CRD.
fn openapi_schema() -> Value {
    let crd = serde_json::to_value(ensemble::api::crd()).expect("CRD as JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// OpenAPI v3 as Kubernetes uses it, rewritten into plain JSON Schema.
fn to_json_schema(schema: &Value, root: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), to_json_schema(v, false)))
                    .collect(),
            ),
            "items" | "additionalProperties" => to_json_schema(value, false),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| to_json_schema(v, false))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(t)) = map.get("type") {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    // kubectl's strict field validation turns a pruned unknown field into an error.
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !root
        && !preserves
        && map.contains_key("properties")
        && !map.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// Fills schema defaults into `value` as the API server does before validating.
fn apply_defaults(schema: &Value, value: &mut Value) {
    let Value::Object(object) = value else {
        if let (Some(items), Value::Array(list)) = (schema.get("items"), value) {
            list.iter_mut().for_each(|v| apply_defaults(items, v));
        }
        return;
    };
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (name, property) in properties {
            if !object.contains_key(name) {
                if let Some(default) = property.get("default") {
                    object.insert(name.clone(), default.clone());
                }
            }
            if let Some(child) = object.get_mut(name) {
                apply_defaults(property, child);
            }
        }
    } else if let Some(additional @ Value::Object(_)) = schema.get("additionalProperties") {
        object
            .values_mut()
            .for_each(|v| apply_defaults(additional, v));
    }
}

struct ApiServerChecks {
    openapi: Value,
    structural: jsonschema::Validator,
    cel: kube_cel::Validator,
}

impl ApiServerChecks {
    fn new() -> Self {
        let openapi = openapi_schema();
        let structural = jsonschema::validator_for(&to_json_schema(&openapi, true))
            .expect("the schema compiles");
        Self {
            openapi,
            structural,
            cel: kube_cel::Validator::new(),
        }
    }

    /// Every error the API server would report for creating `object` (or updating `old` to it).
    fn errors(&self, object: &Value, old: Option<&Value>) -> Vec<String> {
        let mut object = object.clone();
        apply_defaults(&self.openapi, &mut object);
        let old = old.map(|old| {
            let mut old = old.clone();
            apply_defaults(&self.openapi, &mut old);
            old
        });
        let mut errors: Vec<String> = self
            .structural
            .iter_errors(&object)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            if let Err(cel) = self.cel.validate(&self.openapi, &object, old.as_ref()) {
                errors.extend(
                    cel.as_slice()
                        .iter()
                        .map(|e| format!("{}: {}", e.field_path, e.message)),
                );
            }
        }
        errors
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

#[test]
fn every_example_is_accepted() {
    let checks = ApiServerChecks::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(support::repo_path("deploy/examples")).expect("deploy/examples")
    {
        let path = entry.expect("directory entry").path();
        let object = yaml(&std::fs::read_to_string(&path).expect("readable example"));
        assert_eq!(
            checks.errors(&object, None),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 2, "the minimal and the production-like example");
}

#[test]
fn every_invalid_fixture_is_rejected_with_its_field_named() {
    let checks = ApiServerChecks::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(support::repo_path("tests/fixtures/invalid")).expect("fixtures")
    {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        let errors = checks.errors(&yaml(&text), None);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{}: expected an error naming {expected:?}, got {errors:#?}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 10);
}

fn cluster(spec: Value) -> Value {
    json!({"apiVersion": "ensemble.dev/v1alpha1", "kind": "CoordinationCluster", "metadata": {"name": "zk"}, "spec": spec})
}

#[test]
fn storage_can_grow_but_not_shrink_or_change_class() {
    let checks = ApiServerChecks::new();
    let old = cluster(json!({"storage": {"size": "10Gi", "storageClassName": "fast"}}));

    let grown = cluster(json!({"storage": {"size": "20Gi", "storageClassName": "fast"}}));
    assert_eq!(checks.errors(&grown, Some(&old)), Vec::<String>::new());

    let shrunk = cluster(json!({"storage": {"size": "5Gi", "storageClassName": "fast"}}));
    let errors = checks.errors(&shrunk, Some(&old));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("storage.size cannot decrease")),
        "{errors:#?}"
    );

    let reclassed = cluster(json!({"storage": {"size": "10Gi", "storageClassName": "slow"}}));
    let errors = checks.errors(&reclassed, Some(&old));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("storageClassName cannot be changed")),
        "{errors:#?}"
    );

    let unclassed = cluster(json!({"storage": {"size": "10Gi"}}));
    let errors = checks.errors(&unclassed, Some(&old));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("storageClassName cannot be changed")),
        "{errors:#?}"
    );
}

#[test]
fn even_replica_counts_and_scaling_are_accepted() {
    let checks = ApiServerChecks::new();
    let three = cluster(json!({"replicas": 3}));
    for replicas in [1, 2, 4, 5, 9] {
        let scaled = cluster(json!({"replicas": replicas}));
        assert_eq!(
            checks.errors(&scaled, Some(&three)),
            Vec::<String>::new(),
            "{replicas}"
        );
    }
}

#[test]
fn defaults_are_filled_as_the_api_server_would() {
    let mut object = cluster(json!({}));
    apply_defaults(&openapi_schema(), &mut object);
    assert_eq!(object["spec"]["replicas"], 3);
    assert_eq!(object["spec"]["storage"]["size"], "1Gi");
    assert_eq!(object["spec"]["storage"]["reclaimPolicy"], "Retain");
    assert_eq!(object["spec"]["server"]["tickTimeMs"], 2000);
    assert_eq!(object["spec"]["clientService"]["type"], "ClusterIP");
}
