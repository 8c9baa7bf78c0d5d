//! Argument validation against a tool's JSON Schema, before dispatch.
//!
//! The LLM gets a message naming the field and what was expected, so it can
//! correct itself, and the plugin never runs on arguments it did not ask for.

use serde_json::Value;

/// Most problems reported for one call.
const MAX_PROBLEMS: usize = 3;

/// A compiled JSON Schema for one tool's arguments.
pub struct ArgumentValidator {
    validator: jsonschema::Validator,
}

impl ArgumentValidator {
    /// Compiles `schema` (JSON text); an invalid schema is an error.
    pub fn new(schema: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(schema).map_err(|e| format!("schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        Ok(Self { validator })
    }

    /// Checks `arguments` (JSON text), describing every problem (up to a few).
    pub fn check(&self, arguments: &str) -> Result<(), String> {
        let instance: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
        let problems: Vec<String> = self
            .validator
            .iter_errors(&instance)
            .take(MAX_PROBLEMS)
            .map(|error| {
                let path = error.instance_path.to_string();
                let field = path.trim_start_matches('/').replace('/', ".");
                if field.is_empty() { error.to_string() } else { format!("`{field}`: {error}") }
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"object","properties":{"date":{"type":"string","pattern":"^\\d{4}-\\d{2}-\\d{2}$"},
        "guests":{"type":"integer","minimum":1}},"required":["date"]}"#;

    #[test]
    fn names_the_field_and_what_was_expected() {
        let v = ArgumentValidator::new(SCHEMA).unwrap();
        assert_eq!(v.check(r#"{"date":"2026-12-01","guests":2}"#), Ok(()));
        assert_eq!(v.check(r#"{"guests":2}"#).unwrap_err(), r#""date" is a required property"#);
        let err = v.check(r#"{"date":"tomorrow","guests":0}"#).unwrap_err();
        assert!(
            err.contains("`date`: \"tomorrow\" does not match")
                && err.contains("`guests`: 0 is less than the minimum of 1"),
            "{err}"
        );
        assert!(ArgumentValidator::new(r#"{"type": 5}"#).is_err());
    }
}
