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
    /// The schema takes every object (`{"type":"object"}`, the schema of a
    /// tool that reads what it is sent): the check is then only that the
    /// arguments are a JSON object, read without building it.
    any_object: bool,
}

/// Keywords that do not constrain an object: a schema of `"type": "object"`
/// and only these takes every object.
const ANNOTATIONS: [&str; 7] = ["$schema", "$id", "$comment", "title", "description", "examples", "default"];

impl ArgumentValidator {
    /// Compiles `schema` (JSON text); an invalid schema is an error.
    pub fn new(schema: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(schema).map_err(|e| format!("schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        Ok(Self { validator, any_object: takes_any_object(&schema) })
    }

    /// Checks `arguments` (JSON text), describing every problem (up to a few).
    pub fn check(&self, arguments: &str) -> Result<(), String> {
        if self.any_object {
            crate::types::strictly_json(arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
            return match arguments.trim_start().starts_with('{') {
                true => Ok(()),
                false => Err(self.problems(&serde_json::from_str(arguments).unwrap_or_default())),
            };
        }
        let instance: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
        // Most calls pass: the check that lists the problems allocates as it goes.
        if self.validator.is_valid(&instance) { Ok(()) } else { Err(self.problems(&instance)) }
    }

    /// What is wrong with `instance`, a few problems at most.
    fn problems(&self, instance: &Value) -> String {
        let problems: Vec<String> = self
            .validator
            .iter_errors(instance)
            .take(MAX_PROBLEMS)
            .map(|error| {
                let path = error.instance_path.to_string();
                let field = path.trim_start_matches('/').replace('/', ".");
                if field.is_empty() { error.to_string() } else { format!("`{field}`: {error}") }
            })
            .collect();
        problems.join("; ")
    }
}

/// Whether `schema` takes every JSON object: `"type": "object"` and
/// nothing else but [`ANNOTATIONS`], an empty `properties` or
/// `"additionalProperties": true`.
fn takes_any_object(schema: &Value) -> bool {
    let Some(keywords) = schema.as_object() else { return false };
    keywords.get("type").and_then(Value::as_str) == Some("object")
        && keywords.iter().all(|(keyword, value)| match keyword.as_str() {
            "type" => true,
            "properties" => value.as_object().is_some_and(|p| p.is_empty()),
            "additionalProperties" => value == &Value::Bool(true),
            other => ANNOTATIONS.contains(&other),
        })
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

    #[test]
    fn a_schema_that_takes_any_object_takes_every_object_and_nothing_else() {
        for schema in [
            r#"{"type":"object"}"#,
            r#"{"type":"object","properties":{},"additionalProperties":true,"title":"Value"}"#,
            r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","description":"any"}"#,
        ] {
            let v = ArgumentValidator::new(schema).unwrap();
            assert!(v.any_object, "{schema}");
            assert_eq!(v.check(r#"{"a":[1,{"b":null}]}"#), Ok(()));
            assert_eq!(v.check(" {}"), Ok(()));
            // Not an object: the same message as the full check gives.
            assert_eq!(v.check("[1]").unwrap_err(), r#"[1] is not of type "object""#);
            // Not JSON every reader takes.
            for bad in [r#"{"a":"\udfaa"}"#, r#"{"a":2e308}"#, r#"{"a":}"#] {
                assert!(v.check(bad).unwrap_err().starts_with("arguments are not JSON"), "{bad}");
            }
        }
        // Schemas that constrain an object get the full check.
        for schema in [
            SCHEMA,
            r#"{"type":"object","additionalProperties":false}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","minProperties":1}"#,
            r#"{"type":["object","null"]}"#,
        ] {
            assert!(!ArgumentValidator::new(schema).unwrap().any_object, "{schema}");
        }
        let v = ArgumentValidator::new(r#"{"type":"object","minProperties":1}"#).unwrap();
        assert!(v.check("{}").unwrap_err().contains("less than 1 property"), "{:?}", v.check("{}"));
    }
}
