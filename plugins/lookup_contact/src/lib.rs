//! `lookup_contact`: find a contact by name or phone number in a small
//! directory kept inside the plugin.
//!
//! Matching:
//! - A query that looks like a phone number (digits, optionally a leading
//!   `+` or `00`, with spaces, dashes, dots or parentheses in between) is
//!   normalised to E.164 (`0031 6-1234 5678` -> `+31612345678`) and matched
//!   exactly. A national number with one leading `0` (`06 1234 5678`)
//!   matches the contacts whose number ends with the rest of its digits.
//! - Any other query matches names, case-insensitively, as a substring.
//!
//! When several contacts match, the best kind of match wins: the full name,
//! then whole words (`jan` -> "Jan de Vries", not "Janet Brown"), then the
//! start of a word, then anywhere in the name. If several contacts are
//! equally good the query is too vague: the tool answers `invalid-arguments`
//! naming them, so the assistant can ask the caller which one they mean.
//!
//! Found: `{"name": ..., "email": ..., "phone": ...}`. Not found:
//! `not-found("No contact found for 'QUERY'")`.

use switchboard_sdk::prelude::*;

/// Arguments of `lookup_contact`.
#[derive(Debug, Deserialize, JsonSchema)]
struct LookupArgs {
    /// Name or phone number to search
    query: String,
}

/// One entry of the directory, and the tool's answer.
#[derive(Debug, PartialEq, Serialize)]
struct Contact {
    name: &'static str,
    email: &'static str,
    phone: &'static str,
}

/// The directory. Phone numbers are E.164.
#[rustfmt::skip]
const CONTACTS: &[Contact] = &[
    Contact { name: "John Smith", email: "john@example.com", phone: "+31612345678" },
    Contact { name: "Jane Doe", email: "jane.doe@example.com", phone: "+31687654321" },
    Contact { name: "Jan de Vries", email: "jan.devries@example.nl", phone: "+31201234567" },
    Contact { name: "Janet Brown", email: "janet.brown@example.co.uk", phone: "+442079460123" },
    Contact { name: "Maria Garcia", email: "maria.garcia@example.es", phone: "+34911234567" },
    Contact { name: "Ahmed El Amrani", email: "ahmed.elamrani@example.com", phone: "+31101234567" },
    Contact { name: "Sophie Müller", email: "sophie.mueller@example.de", phone: "+4930123456789" },
    Contact { name: "Li Wei", email: "li.wei@example.com", phone: "+8613812345678" },
];

fn lookup_contact(args: LookupArgs, _ctx: &CallContext) -> Result<&'static Contact, ToolError> {
    let query = args.query.split_whitespace().collect::<Vec<_>>().join(" ");
    if query.is_empty() {
        return Err(ToolError::invalid_arguments("`query` is empty: give a name or a phone number to search for"));
    }
    let matches = match phone_query(&query) {
        Some(phone) => match_phone(&phone),
        None => match_name(&query),
    };
    match matches.as_slice() {
        [] => Err(ToolError::not_found(format!("No contact found for '{query}'"))),
        [contact] => Ok(contact),
        several => {
            let names: Vec<_> = several.iter().map(|c| c.name).collect();
            Err(ToolError::invalid_arguments(format!(
                "'{query}' matches several contacts: {}. Ask which one is meant and search again with the full name or number.",
                names.join(", ")
            )))
        }
    }
}

/// A phone query, normalised, if `query` looks like a phone number.
enum Phone {
    /// `+` and digits: E.164.
    International(String),
    /// The digits after a single leading `0` (trunk prefix).
    National(String),
}

fn phone_query(query: &str) -> Option<Phone> {
    // "+31 (0)6 ...": the "(0)" is the trunk prefix, dialled only nationally.
    let query = match query.starts_with('+') || query.starts_with("00") {
        true => query.replace("(0)", ""),
        false => query.to_owned(),
    };
    let compact: String = query.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/')).collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, compact.as_str()),
    };
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(if plus {
        Phone::International(format!("+{digits}"))
    } else if let Some(rest) = digits.strip_prefix("00") {
        Phone::International(format!("+{rest}"))
    } else if let Some(rest) = digits.strip_prefix('0') {
        Phone::National(rest.to_owned())
    } else {
        // Digits without any prefix: taken as E.164 without the `+`.
        Phone::International(format!("+{digits}"))
    })
}

fn match_phone(phone: &Phone) -> Vec<&'static Contact> {
    CONTACTS
        .iter()
        .filter(|c| match phone {
            Phone::International(number) => c.phone == number,
            Phone::National(rest) => c.phone.ends_with(rest.as_str()),
        })
        .collect()
}

fn match_name(query: &str) -> Vec<&'static Contact> {
    let query = query.to_lowercase();
    let ranked: Vec<(u8, &'static Contact)> =
        CONTACTS.iter().filter_map(|c| name_rank(&c.name.to_lowercase(), &query).map(|rank| (rank, c))).collect();
    let Some(best) = ranked.iter().map(|(rank, _)| *rank).min() else {
        return Vec::new();
    };
    ranked.into_iter().filter(|(rank, _)| *rank == best).map(|(_, c)| c).collect()
}

/// How well `query` matches `name` (both lower case): lower is better.
fn name_rank(name: &str, query: &str) -> Option<u8> {
    let padded = format!(" {name} ");
    if name == query {
        Some(0)
    } else if padded.contains(&format!(" {query} ")) {
        Some(1)
    } else if padded.contains(&format!(" {query}")) {
        Some(2)
    } else if name.contains(query) {
        Some(3)
    } else {
        None
    }
}

switchboard_sdk::plugin! {
    tool "lookup_contact" => lookup_contact, "Look up contact information by name or phone number";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(query: &str) -> Result<&'static str, ToolError> {
        let args = LookupArgs { query: query.into() };
        lookup_contact(args, &CallContext::default()).map(|c| c.name)
    }

    #[test]
    fn answers_the_contact_object() {
        let answer = plugin().call("lookup_contact", r#"{"query":"John Smith"}"#, &CallContext::default());
        assert_eq!(answer.unwrap(), r#"{"name":"John Smith","email":"john@example.com","phone":"+31612345678"}"#);
    }

    #[test]
    fn matches_names_case_insensitively() {
        assert_eq!(lookup("john smith"), Ok("John Smith"));
        assert_eq!(lookup("  SMITH "), Ok("John Smith"));
        assert_eq!(lookup("garc"), Ok("Maria Garcia"));
        assert_eq!(lookup("müller"), Ok("Sophie Müller"));
        assert_eq!(lookup("el amrani"), Ok("Ahmed El Amrani"));
        assert_eq!(lookup("ohn"), Ok("John Smith"));
    }

    #[test]
    fn prefers_the_better_match() {
        assert_eq!(lookup("jan"), Ok("Jan de Vries"));
        assert_eq!(lookup("jane"), Ok("Jane Doe"));
        assert_eq!(lookup("janet"), Ok("Janet Brown"));
    }

    #[test]
    fn equally_good_matches_are_ambiguous() {
        let Err(ToolError::InvalidArguments(message)) = lookup("ja") else {
            panic!("expected invalid-arguments");
        };
        assert!(message.contains("Jane Doe, Jan de Vries, Janet Brown"), "{message}");
    }

    #[test]
    fn matches_phone_numbers_in_any_format() {
        for query in [
            "+31612345678",
            "+31 6 1234 5678",
            "0031-6-12345678",
            "06 12 34 56 78",
            "31612345678",
            "+31 (0)6 1234 5678",
        ] {
            assert_eq!(lookup(query), Ok("John Smith"), "{query}");
        }
        assert_eq!(lookup("+44 20 7946 0123"), Ok("Janet Brown"));
    }

    #[test]
    fn unknown_queries_are_not_found() {
        assert_eq!(lookup("Nobody"), Err(ToolError::not_found("No contact found for 'Nobody'")));
        assert_eq!(lookup("+1 555 0100"), Err(ToolError::not_found("No contact found for '+1 555 0100'")));
    }

    #[test]
    fn empty_queries_are_invalid() {
        assert!(matches!(lookup(""), Err(ToolError::InvalidArguments(_))));
        assert!(matches!(lookup("   "), Err(ToolError::InvalidArguments(_))));
        let missing = plugin().call("lookup_contact", "{}", &CallContext::default());
        assert_eq!(missing, Err(ToolError::invalid_arguments("missing field `query`")));
    }

    #[test]
    fn schema_describes_the_query() {
        let definitions = plugin().definitions();
        assert_eq!(definitions.len(), 1);
        assert_eq!(
            definitions[0].parameters_schema,
            serde_json::json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Name or phone number to search"}
                },
                "required": ["query"]
            })
        );
    }
}
