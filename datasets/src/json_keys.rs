//! Keys of a JSON record that its reader does not know: serde skips them silently, so a
//! misspelt key (or one a newer writer added) would change nothing without a word. The
//! readers of `manifest.json` (embedding stores) and `codes.json` (`vqvae decode`) warn with
//! what [`unknown_keys`] finds.

/// The keys of the JSON object in `text` that `known` does not name (sorted), then, for each
/// object in its array field `list`, the keys `entry_known` does not name, as `list[i].key`.
/// Empty when `text` is not a JSON object.
pub fn unknown_keys(text: &str, known: &[&str], list: &str, entry_known: &[&str]) -> Vec<String> {
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut unknown: Vec<String> = top
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    if let Some(serde_json::Value::Array(entries)) = top.get(list) {
        for (i, entry) in entries.iter().enumerate() {
            if let serde_json::Value::Object(entry) = entry {
                unknown.extend(
                    entry
                        .keys()
                        .filter(|k| !entry_known.contains(&k.as_str()))
                        .map(|k| format!("{list}[{i}].{k}")),
                );
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::unknown_keys;

    #[test]
    fn other_keys_are_named_with_their_entry() {
        let text = r#"{"b": 1, "a": 2, "items": [{"x": 1}, {"x": 2, "y": 3}, 4]}"#;
        assert_eq!(
            unknown_keys(text, &["items", "b"], "items", &["x"]),
            ["a", "items[1].y"]
        );
        assert!(unknown_keys(text, &["a", "b", "items"], "items", &["x", "y"]).is_empty());
        assert!(unknown_keys("[1, 2]", &[], "items", &[]).is_empty());
        assert!(unknown_keys("not json", &[], "items", &[]).is_empty());
    }
}
