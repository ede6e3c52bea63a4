//! The OpenAPI description a node serves: valid, complete, and true to what the node answers.

use serde_json::Value;
use verity_node::devnet;

/// The schema a `$ref` names, from the document's components.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    document["components"]["schemas"].get(name)
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A value for a path parameter that reaches the handler (which then answers 4xx or 200).
fn fill(path: &str) -> String {
    path.replace("{id}", "0").replace("{kind}", "account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_a_valid_openapi_document_true_to_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = devnet::start_single(
        dir.path(),
        devnet::genesis(),
        "127.0.0.1:0".parse().unwrap(),
        50,
    )
    .await
    .unwrap();
    let url = node.url();
    let http = reqwest::Client::new();

    let response = http
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(document["info"]["title"], "Verity node API");

    // Every reference resolves, so a generator can follow the whole document.
    let mut all = Vec::new();
    refs(&document, &mut all);
    assert!(
        all.len() > 20,
        "the schemas are referenced, not inlined away"
    );
    for r in &all {
        assert!(resolve(&document, r).is_some(), "dangling reference {r}");
    }

    // Every described operation exists on the node: the right method on the right path
    // reaches a handler (never a 405, never the fallback's "no such endpoint"), and answers
    // with a status the document lists for it (here mostly the refusals: ids are `0`, bodies
    // `null`).
    let paths = document["paths"].as_object().unwrap();
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} says what it answers"
            );
            let target = format!("{url}{}", fill(path));
            let response = match method.as_str() {
                "get" => http.get(&target).send().await.unwrap(),
                "post" => http.post(&target).json(&Value::Null).send().await.unwrap(),
                other => panic!("unexpected method {other} for {path}"),
            };
            let status = response.status().as_u16();
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                operation["responses"].get(status.to_string()).is_some(),
                "{method} {path} answered {status}, which the document does not list"
            );
            if path != "/v1/events" {
                let body = response.text().await.unwrap();
                assert!(
                    !body.contains("no such endpoint"),
                    "{method} {path}: {body}"
                );
            }
        }
    }

    // What the node answers has the described shape: every required property is there and
    // there is none the description does not name.
    for path in ["/v1/head", "/v1/stats", "/v1/providers", "/v1/jobs"] {
        let schema =
            &paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let answer: Value = http
            .get(format!("{url}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (schema, answer) = match schema.get("items") {
            // A list: check its first element against the item schema.
            Some(items) => (items, answer[0].clone()),
            None => (schema, answer),
        };
        let schema = resolve(&document, schema["$ref"].as_str().unwrap()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let answer = answer.as_object().unwrap();
        for required in schema["required"].as_array().unwrap() {
            let name = required.as_str().unwrap();
            assert!(
                answer.contains_key(name),
                "{path}: `{name}` is described as required"
            );
        }
        for name in answer.keys() {
            assert!(
                properties.contains_key(name),
                "{path}: `{name}` is not described"
            );
        }
    }
}
