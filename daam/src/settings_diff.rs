//! Which fields differ between two serialised settings, for errors that name them: `vqvae train
//! --resume` against the run's `config.json`, `classify replicate` against `replicate.json`.

use serde::Serialize;
use serde_json::Value;

/// Every field where `stored` and `requested` differ, as `path: stored → requested` in field
/// order (`model.num_codes: 32 → 64`); empty when they serialise alike.
///
/// # Panics
/// If either does not serialise to JSON (settings structs always do).
pub fn differences<T: Serialize>(stored: &T, requested: &T) -> Vec<String> {
    let json = |value: &T| serde_json::to_value(value).expect("settings serialise to JSON");
    let mut out = Vec::new();
    walk(&json(stored), &json(requested), "", &mut out);
    out
}

fn walk(stored: &Value, requested: &Value, path: &str, out: &mut Vec<String>) {
    match (stored, requested) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().collect();
            keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                walk(x, y, &child, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} → {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        codes: usize,
        widths: Vec<usize>,
    }

    #[derive(Serialize)]
    struct Outer {
        name: &'static str,
        inner: Inner,
        note: Option<&'static str>,
    }

    #[test]
    fn names_each_differing_leaf_with_its_path() {
        let a = Outer {
            name: "tiny",
            inner: Inner {
                codes: 32,
                widths: vec![8, 16],
            },
            note: None,
        };
        let b = Outer {
            name: "tiny",
            inner: Inner {
                codes: 64,
                widths: vec![8, 32],
            },
            note: Some("x"),
        };
        assert_eq!(
            differences(&a, &b),
            [
                "inner.codes: 32 → 64",
                "inner.widths: [8,16] → [8,32]",
                "note: null → \"x\""
            ]
        );
        assert!(differences(&a, &a).is_empty());
    }
}
