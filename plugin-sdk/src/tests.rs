//! Native tests of schema generation, argument handling and dispatch.

use crate::prelude::*;
use crate::{Plugin, Tool, parameters_schema};
use serde_json::{Value, json};

/// Arguments of `lookup_contact`.
#[derive(Debug, Deserialize, JsonSchema)]
struct LookupArgs {
    /// Name or phone number to search
    query: String,
}

#[derive(Serialize)]
struct Contact {
    name: String,
    email: String,
    phone: String,
}

fn lookup_contact(args: LookupArgs, _ctx: &CallContext) -> Result<Contact, ToolError> {
    if args.query == "John Smith" {
        Ok(Contact { name: "John Smith".into(), email: "john@example.com".into(), phone: "+31612345678".into() })
    } else {
        Err(ToolError::not_found(format!("No contact found for '{}'", args.query)))
    }
}

/// A street address.
#[derive(Debug, Deserialize, JsonSchema)]
struct Address {
    /// City name
    city: String,
    /// Postal code
    zip: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Channel {
    Sms,
    Email,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct BookArgs {
    /// Where to go
    address: Address,
    /// Extra stops
    #[serde(default)]
    stops: Vec<Address>,
    /// How to confirm
    channel: Channel,
    /// Party size
    seats: Option<u8>,
}

fn book(args: BookArgs, ctx: &CallContext) -> Result<Value, ToolError> {
    Ok(json!({
        "city": args.address.city,
        "zip": args.address.zip,
        "stops": args.stops.len(),
        "seats": args.seats,
        "channel": format!("{:?}", args.channel),
        "caller": ctx.customer_number,
    }))
}

crate::plugin! {
    /// Doc comments are allowed.
    tool "lookup_contact" => lookup_contact, "Look up contact information by name or phone number";
    tool "book" => book, String::from("Book a ride");
    tool "echo" => |args: Value, _ctx: &CallContext| Ok::<_, ToolError>(json!({ "echo": args })), "Echo";
    tool "fail" => |_: Value, _: &CallContext| -> Result<(), ToolError> { Err("boom".into()) }, "Fails";
}

fn ctx() -> CallContext {
    CallContext::default()
}

#[test]
fn schema_is_a_plain_object_schema_with_descriptions() {
    assert_eq!(
        parameters_schema::<LookupArgs>(),
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Name or phone number to search"}
            },
            "required": ["query"]
        })
    );
}

#[test]
fn nested_schemas_are_inlined() {
    let schema = parameters_schema::<BookArgs>();
    let text = schema.to_string();
    assert!(!text.contains("$ref"), "{text}");
    assert!(!text.contains("$defs"), "{text}");
    assert!(schema.get("$schema").is_none());
    assert!(schema.get("title").is_none());
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["address", "channel"]));
    let address = &schema["properties"]["address"];
    assert_eq!(address["type"], "object");
    assert_eq!(address["properties"]["city"]["description"], "City name");
    assert_eq!(address["required"], json!(["city"]));
    assert_eq!(schema["properties"]["stops"]["items"]["type"], "object");
    assert_eq!(schema["properties"]["channel"]["enum"], json!(["sms", "email"]));
    assert_eq!(schema["properties"]["seats"]["type"], json!(["integer", "null"]));
}

#[test]
fn schema_of_any_value_is_an_open_object() {
    assert_eq!(parameters_schema::<Value>(), json!({"type": "object"}));
}

#[test]
fn definitions_list_every_tool_in_order() {
    let definitions = plugin().definitions();
    let names: Vec<_> = definitions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["lookup_contact", "book", "echo", "fail"]);
    assert_eq!(definitions[0].description, "Look up contact information by name or phone number");
    assert_eq!(definitions[0].parameters_schema, parameters_schema::<LookupArgs>());
    assert_eq!(definitions[1].description, "Book a ride");
    assert_eq!(definitions[2].parameters_schema, json!({"type": "object"}));
}

#[test]
fn dispatches_by_name_and_serializes_the_result() {
    assert_eq!(
        plugin().call("lookup_contact", r#"{"query":"John Smith"}"#, &ctx()).unwrap(),
        r#"{"name":"John Smith","email":"john@example.com","phone":"+31612345678"}"#
    );
    assert_eq!(
        plugin().call("echo", r#"{"b":[1,{"c":null}],"a":"x"}"#, &ctx()).unwrap(),
        r#"{"echo":{"a":"x","b":[1,{"c":null}]}}"#
    );
    let context = CallContext { customer_number: Some("+31600000000".into()), ..ctx() };
    let answer =
        plugin().call("book", r#"{"address":{"city":"Utrecht"},"channel":"sms","seats":2}"#, &context).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"city": "Utrecht", "zip": null, "stops": 0, "seats": 2, "channel": "Sms", "caller": "+31600000000"})
    );
}

#[test]
fn tool_errors_pass_through() {
    assert_eq!(
        plugin().call("lookup_contact", r#"{"query":"Nobody"}"#, &ctx()),
        Err(ToolError::not_found("No contact found for 'Nobody'"))
    );
    assert_eq!(plugin().call("fail", "{}", &ctx()), Err(ToolError::failed("boom")));
}

#[test]
fn unknown_tool_is_not_found() {
    assert_eq!(plugin().call("nope", "{}", &ctx()), Err(ToolError::NotFound("unknown tool: nope".into())));
}

fn invalid(tool: &str, arguments: &str) -> String {
    match plugin().call(tool, arguments, &ctx()) {
        Err(ToolError::InvalidArguments(message)) => message,
        other => panic!("expected invalid-arguments, got {other:?}"),
    }
}

#[test]
fn argument_errors_name_the_field() {
    assert_eq!(invalid("lookup_contact", "{}"), "missing field `query`");
    assert_eq!(invalid("lookup_contact", r#"{"query":5}"#), "query: invalid type: integer `5`, expected a string");
    assert_eq!(invalid("book", r#"{"address":{},"channel":"sms"}"#), "address: missing field `city`");
    assert_eq!(
        invalid("book", r#"{"address":{"city":"A"},"stops":[{"city":"B"},{"city":7}],"channel":"sms"}"#),
        "stops[1].city: invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        invalid("book", r#"{"address":{"city":"A"},"channel":"fax"}"#),
        "channel: unknown variant `fax`, expected `sms` or `email`"
    );
    assert_eq!(invalid("lookup_contact", "5"), "invalid type: integer `5`, expected struct LookupArgs");
}

#[test]
fn malformed_json_is_invalid_arguments() {
    let message = invalid("lookup_contact", r#"{"query":"#);
    assert!(message.starts_with("the arguments are not valid JSON: "), "{message}");
}

#[test]
fn empty_arguments_count_as_an_empty_object() {
    assert_eq!(plugin().call("echo", "", &ctx()).unwrap(), r#"{"echo":{}}"#);
    assert_eq!(invalid("lookup_contact", "  "), "missing field `query`");
}

#[test]
fn plugin_can_be_built_by_hand() {
    let plugin = Plugin::new().tool("a", "A", |_: Value, _: &CallContext| Ok::<_, ToolError>(1)).with(Tool::new(
        "b",
        "B",
        |n: u32, _: &CallContext| Ok::<_, ToolError>(n * 2),
    ));
    assert_eq!(plugin.call("b", "21", &ctx()).unwrap(), "42");
    assert_eq!(plugin.get("a").unwrap().description(), "A");
    assert!(plugin.get("c").is_none());
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_tool_names_panic() {
    let echo = |v: Value, _: &CallContext| Ok::<_, ToolError>(v);
    let _ = Plugin::new().tool("x", "", echo).tool("x", "", echo);
}

#[test]
#[should_panic(expected = "invalid tool name")]
fn invalid_tool_names_panic() {
    let _ = Tool::new("look up", "", |v: Value, _: &CallContext| Ok::<_, ToolError>(v));
}

mod hooks {
    use crate::serde_json::{Value, json};
    use crate::{CallContext, ToolError};

    fn echo(args: Value, _ctx: &CallContext) -> Result<Value, ToolError> {
        Ok(args)
    }

    fn greet(message: &Value) -> Result<Value, String> {
        let caller = message["customer"]["number"].as_str().unwrap_or("there");
        Ok(json!({"assistant": {"first_message": format!("Hello {caller}")}}))
    }

    fn record(message: &Value) -> Result<(), String> {
        if message["type"] == "status-update" { Ok(()) } else { Err("not a status update".into()) }
    }

    crate::plugin! {
        tool "echo" => echo, "Echo";
        on_assistant_request => greet;
        on_event => record
    }

    #[test]
    fn hooks_are_declared_and_dispatched() {
        let plugin = plugin();
        assert_eq!(plugin.subscriptions(), ["assistant-request", "status-update", "end-of-call-report"]);
        let answer = plugin.assistant_request(r#"{"type":"assistant-request","customer":{"number":"+31"}}"#).unwrap();
        assert_eq!(answer, r#"{"assistant":{"first_message":"Hello +31"}}"#);
        assert_eq!(plugin.event(r#"{"type":"status-update"}"#), Ok(()));
        assert_eq!(plugin.event(r#"{"type":"end-of-call-report"}"#), Err("not a status update".into()));
        assert!(plugin.assistant_request("nope").unwrap_err().contains("not JSON"));
        assert_eq!(plugin.call("echo", r#"{"a":1}"#, &CallContext::default()).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn without_hooks_assistant_request_answers_empty_and_events_are_ignored() {
        let plugin = crate::Plugin::new().tool("echo", "Echo", echo);
        assert!(plugin.subscriptions().is_empty());
        assert_eq!(plugin.assistant_request("{}").unwrap(), "{}");
        assert_eq!(plugin.event("{}"), Ok(()));
    }
}
