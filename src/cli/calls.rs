//! `switchboard calls`: the call log from a terminal. Reads the database a
//! server writes (it may be running), as `/api/calls` does.

use std::process::ExitCode;

use anyhow::Context;
use switchboard::{CallEntry, CallLogReader, CallQuery, CallStory, CallSummary, parse_time};

use super::CallsArgs;
use super::config::{Overrides, resolve};

/// Lists calls, or with `--call` shows one call's story.
pub async fn run(args: CallsArgs) -> anyhow::Result<ExitCode> {
    let (_, settings) =
        resolve(&Overrides { config: args.config.clone(), data_dir: args.data_dir.clone(), ..Default::default() })?;
    let log_settings =
        settings.call_log.context("the call log is off in the configuration ([call_log] enabled = false)")?;
    let log = CallLogReader::open(&log_settings).await.map_err(anyhow::Error::msg)?;
    if let Some(id) = &args.call {
        let Some(story) = log.story(id).await.map_err(anyhow::Error::msg)? else {
            eprintln!("no call {id:?} in the call log");
            return Ok(ExitCode::from(1));
        };
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&story)?),
            false => print_story(&story),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let query = CallQuery {
        number: args.number,
        tool: args.tool,
        outcome: if args.errors { Some("failed".into()) } else { args.outcome },
        from: args.since.as_deref().map(parse_time).transpose().map_err(anyhow::Error::msg)?,
        limit: args.limit,
        ..CallQuery::default()
    };
    let page = log.calls(&query).await?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&page)?),
        false => print_calls(&page.calls),
    }
    Ok(ExitCode::SUCCESS)
}

fn or_dash(text: &Option<String>) -> &str {
    text.as_deref().unwrap_or("-")
}

fn print_calls(calls: &[CallSummary]) {
    if calls.is_empty() {
        println!("no calls");
        return;
    }
    println!("{:<24}  {:<36}  {:<16}  {:>5}  {:>6}  STATUS", "LAST ACTIVE", "CALL", "CALLER", "TOOLS", "FAILED");
    for call in calls {
        let status = match (&call.status, &call.ended_reason) {
            (Some(status), Some(reason)) => format!("{status} ({reason})"),
            (status, _) => or_dash(status).to_owned(),
        };
        println!(
            "{:<24}  {:<36}  {:<16}  {:>5}  {:>6}  {}",
            call.last_at,
            call.call_id,
            or_dash(&call.customer_number),
            call.tool_calls,
            call.failed,
            status
        );
    }
}

fn print_story(story: &CallStory) {
    let call = &story.call;
    println!("call {}", call.call_id);
    println!("  caller {}  called {}", or_dash(&call.customer_number), or_dash(&call.phone_number));
    println!("  from {} to {}", call.first_at, call.last_at);
    println!("  {} tool calls, {} failed; status {}", call.tool_calls, call.failed, or_dash(&call.status));
    if let Some(reason) = &call.ended_reason {
        println!("  ended: {reason}");
    }
    println!();
    for entry in &story.entries {
        match entry {
            CallEntry::Webhook { at, event, http_status, duration_ms, detail, .. } => {
                let detail = detail.as_ref().map(|d| format!("  {d}")).unwrap_or_default();
                println!("{at}  {event:<19} HTTP {http_status}  {duration_ms:.1} ms{detail}");
            }
            CallEntry::ToolCall {
                at,
                tool,
                tool_call_id,
                plugin,
                version,
                door,
                outcome,
                duration_ms,
                arguments,
                result,
                error,
                ..
            } => {
                let by = match (plugin, version) {
                    (Some(plugin), Some(version)) => format!("{plugin}@{version}"),
                    _ => "no plugin".to_owned(),
                };
                println!("{at}  tool {tool} ({tool_call_id}, {door}, {by})  {outcome}  {duration_ms:.1} ms");
                if let Some(arguments) = arguments {
                    println!("    arguments {arguments}");
                }
                if let Some(result) = result {
                    println!("    result    {result}");
                }
                if let Some(error) = error {
                    println!("    error     {error}");
                }
            }
        }
    }
}
