//! The body of each subcommand.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use switchboard::{CallContext, Settings, Switchboard, sign, unix_now};

use super::config::{Overrides, resolve};
use super::{CallArgs, Command, CompileArgs, McpArgs, PluginArgs, SendArgs, ServeArgs, SignArgs};

/// Runs one subcommand. `Err` is a usage or configuration error (exit 2).
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Mcp(args) => mcp(args).await,
        Command::Call(args) => call(args).await,
        Command::Tools(args) => tools(args).await,
        Command::Check(args) => check(args).await,
        Command::Compile(args) => compile(args).await,
        Command::Sign(args) => sign_body(args),
        Command::Send(args) => send(args).await,
        Command::New(args) => super::new::run(args).map(|()| ExitCode::SUCCESS),
        Command::Calls(args) => super::calls::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (listen, mut settings) = resolve(&Overrides {
        listen: args.listen,
        plugins: args.plugins.plugins,
        config: args.plugins.config,
        secret: args.secret,
        insecure_no_verify: args.insecure_no_verify,
        tool_calls_budget_ms: args.tool_calls_budget_ms,
        max_body_bytes: args.max_body_bytes,
        no_watch: args.no_watch,
        mcp_tokens: args.mcp_tokens,
        admin_token: args.admin_token,
        separate_admin: args.admin_listen.is_some(),
        header_read_timeout_ms: args.header_read_timeout_ms,
        idle_timeout_secs: args.idle_timeout_secs,
        max_connections: args.max_connections,
        data_dir: args.data_dir,
    })?;
    if args.dev {
        settings.dedup = None;
        tracing::info!("development mode (--dev): duplicate suppression is off; every request runs its plugin");
    }
    raise_open_file_limit();
    if settings.insecure_no_verify {
        tracing::warn!("INSECURE: --insecure-no-verify is set; webhook signatures will NOT be checked");
    }
    let plugins_dir = settings.plugins_dir.clone();
    let switchboard = Switchboard::start(settings).await?;
    let plugins = switchboard.plugins();
    let listener = bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        plugins = %plugins_dir.display(),
        loaded = plugins.iter().filter(|p| p.loaded.is_ok()).count(),
        failed = plugins.iter().filter(|p| p.loaded.is_err()).count(),
        loading = ?switchboard.plugins_loading(),
        "switchboard listening: POST /webhook"
    );
    // One signal stops both listeners.
    let stop = tokio_util::sync::CancellationToken::new();
    let admin = match args.admin_listen {
        Some(address) => {
            let admin = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--admin-listen)"))?;
            tracing::info!(address = %admin.local_addr()?, "operator endpoints listening: /metrics, /tools, /plugins");
            let (switchboard, stopped) = (switchboard.clone(), stop.clone().cancelled_owned());
            Some(tokio::spawn(async move { switchboard::serve_admin(admin, &switchboard, stopped).await }))
        }
        None => None,
    };
    let signal = {
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    };
    let served = switchboard::serve(listener, &switchboard, signal).await;
    stop.cancel();
    let admin_served = match admin {
        Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        None => Ok(()),
    };
    if let Err(e) = served.and(admin_served) {
        tracing::error!(error = %e, "server failed");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Listens on `address` with a backlog of 1024 connections (the kernel may
/// cap it: `net.core.somaxconn`) rather than tokio's 128, so a burst of new
/// connections, or a full connection cap, waits there instead of making
/// clients retransmit their SYN after a second.
fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Raises the soft limit on open files to the hard limit: each connection is
/// one. The server keeps its connection cap below whatever the limit is.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0);
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(now) => tracing::info!(before, now, "open-file limit (soft RLIMIT_NOFILE) raised to the hard limit"),
            Err(e) => tracing::warn!(error = %e, limit = before, "cannot raise the open-file limit"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Loads the plugins named by `args` into this process: no webhook door,
/// no watcher, no duplicate store.
async fn load_plugins(args: PluginArgs) -> anyhow::Result<(Settings, Switchboard)> {
    let (_, settings) = resolve(&Overrides { plugins: args.plugins, config: args.config, ..Default::default() })?;
    // No background compiles: the command exits before they would finish.
    let mut local = Settings { watch: false, dedup: None, call_log: None, ..settings.clone() };
    local.compile.background_threads = 0;
    let switchboard = Switchboard::start_local(local).await?;
    switchboard.plugins_loaded().await;
    Ok((settings, switchboard))
}

async fn mcp(args: McpArgs) -> anyhow::Result<ExitCode> {
    let (_, settings) = resolve(&Overrides {
        plugins: args.plugins.plugins,
        config: args.plugins.config,
        no_watch: args.no_watch,
        ..Default::default()
    })?;
    // No webhooks here, so no duplicate store: an MCP call has no retry id.
    // No call log either: a client may start this in any folder.
    let switchboard = Switchboard::start_local(Settings { dedup: None, call_log: None, ..settings }).await?;
    // A client lists the tools once it has connected, and not every client
    // follows `list_changed`: every plugin is loaded before the first answer.
    switchboard.plugins_loaded().await;
    tracing::info!(tools = switchboard.tools().len(), "serving MCP on stdin and stdout");
    if let Err(e) = switchboard.serve_mcp(tokio::io::stdin(), tokio::io::stdout()).await {
        tracing::error!(error = %e, "MCP over stdio failed");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&args.arguments)
        .context("ARGUMENTS must be a JSON object, for example '{\"query\": \"John Smith\"}'")?;
    let (_, switchboard) = load_plugins(args.plugins).await?;
    let tools = switchboard.tools();
    if !tools.iter().any(|tool| tool.name == args.tool) {
        let known: Vec<_> = tools.into_iter().map(|t| t.name).collect();
        eprintln!("error: no loaded plugin provides tool {:?}; loaded tools: {}", args.tool, known.join(", "));
        // The plugin meant may be one that failed to load: say why.
        for plugin in switchboard.plugins() {
            if let Err(error) = plugin.loaded {
                eprintln!("       {} did not load: {error}", plugin.name);
            }
        }
        return Ok(ExitCode::from(1));
    }
    let context = CallContext {
        call_id: "local-call".into(),
        call_type: "web_call".into(),
        // A new id each run: a plugin may pass it upstream as an idempotency key.
        tool_call_id: format!(
            "local-tool-call-{}",
            std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos()
        ),
        customer_number: args.customer_number,
        phone_number: None,
        assistant_metadata: args.metadata,
    };
    let started = std::time::Instant::now();
    let result = switchboard.call_tool(&args.tool, &args.arguments, &context).await;
    let elapsed = started.elapsed();
    match result {
        Ok(output) => {
            let pretty = pretty_json(&output).unwrap_or(output);
            println!("{pretty}");
            let plugin = switchboard.plugins().into_iter().find_map(|p| {
                let loaded = p.loaded.ok()?;
                loaded.tools.contains(&args.tool).then(|| format!("{} v{}", p.name, loaded.version))
            });
            eprintln!("ok: {} ({}) in {:.1} ms", args.tool, plugin.unwrap_or_default(), ms(elapsed));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("failed: {} in {:.1} ms", args.tool, ms(elapsed));
            Ok(ExitCode::from(1))
        }
    }
}

async fn tools(args: PluginArgs) -> anyhow::Result<ExitCode> {
    let (_, switchboard) = load_plugins(args).await?;
    let definitions = serde_json::json!({ "llm_config": { "tools": switchboard.platform_tools() } });
    println!("{}", serde_json::to_string_pretty(&definitions)?);
    Ok(ExitCode::SUCCESS)
}

async fn check(args: PluginArgs) -> anyhow::Result<ExitCode> {
    let (settings, switchboard) = load_plugins(args).await?;
    println!("plugins folder: {}", settings.plugins_dir.display());
    let plugins = switchboard.plugins();
    for plugin in &plugins {
        if let Ok(loaded) = &plugin.loaded {
            println!(
                "  ok     {} ({}, v{}, {}): {}",
                plugin.name,
                loaded.kind,
                loaded.version,
                loaded.tier,
                loaded.tools.join(", ")
            );
        }
    }
    report_failures(&plugins)
}

/// Prints the plugins that failed to load; exit status 1 when any did.
fn report_failures(plugins: &[switchboard::PluginStatus]) -> anyhow::Result<ExitCode> {
    for plugin in plugins {
        if let Err(error) = &plugin.loaded {
            println!("  FAILED {}: {error}", plugin.name);
        }
    }
    if plugins.iter().all(|p| p.loaded.is_ok()) { Ok(ExitCode::SUCCESS) } else { Ok(ExitCode::from(1)) }
}

async fn compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let (_, mut settings) =
        resolve(&Overrides { plugins: args.plugins.plugins, config: args.plugins.config, ..Default::default() })?;
    if let Some(dir) = args.cache_dir {
        settings.cache_dir = Some(dir);
    }
    let cache_dir = settings.cache_dir.clone().context("no code cache folder")?;
    // Optimised code only, compiled now: the tier a server starts on.
    settings.compile.tiered = false;
    let started = std::time::Instant::now();
    let switchboard =
        Switchboard::start_local(Settings { watch: false, dedup: None, call_log: None, ..settings.clone() }).await?;
    switchboard.plugins_loaded().await;
    println!("plugins folder: {}", settings.plugins_dir.display());
    println!("code cache:     {}", cache_dir.display());
    let plugins = switchboard.plugins();
    for plugin in &plugins {
        if let Ok(loaded) = &plugin.loaded {
            println!("  ok     {} ({}, v{}, {})", plugin.name, loaded.kind, loaded.version, loaded.tier);
        }
    }
    eprintln!("compiled in {:.1} s", started.elapsed().as_secs_f64());
    report_failures(&plugins)
}

fn read_body(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body).context("cannot read stdin")?;
        Ok(body)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn first_secret(secret: &str) -> &str {
    secret.split(',').next().unwrap_or(secret).trim()
}

fn sign_body(args: SignArgs) -> anyhow::Result<ExitCode> {
    let body = read_body(&args.body)?;
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    let signature = sign(first_secret(&args.secret).as_bytes(), timestamp, &body);
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("X-Webhook-Timestamp", timestamp.to_string()),
        ("X-Webhook-Signature", signature),
    ];
    for (name, value) in headers {
        if args.curl {
            println!("-H '{name}: {value}'");
        } else {
            println!("{name}: {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let body = read_body(&args.body)?;
    let event = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"]["type"].as_str().map(str::to_owned));
    let timestamp = unix_now();
    let signature = sign(first_secret(&args.secret).as_bytes(), timestamp, &body);
    let mut request = reqwest::Client::new()
        .post(&args.url)
        .timeout(Duration::from_secs(15))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Timestamp", timestamp.to_string())
        .header("X-Webhook-Signature", signature);
    if let Some(event) = event {
        request = request.header("X-Webhook-Event", event);
    }
    let started = std::time::Instant::now();
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("error: cannot reach {}: {e}", args.url);
            return Ok(ExitCode::from(1));
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let pretty = pretty_json(&text).unwrap_or(text);
    eprintln!("HTTP {status} in {:.1} ms", ms(started.elapsed()));
    println!("{pretty}");
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `json` indented, its keys in the plugin's order (a `Value` would sort them).
fn pretty_json(json: &str) -> Option<String> {
    let mut out = Vec::with_capacity(json.len() * 2);
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_transcode::transcode(&mut deserializer, &mut serde_json::Serializer::pretty(&mut out)).ok()?;
    deserializer.end().ok()?;
    String::from_utf8(out).ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_printed_with_the_plugins_key_order() {
        let pretty = pretty_json(r#"{"zebra":1,"apple":{"y":[2],"b":null}}"#).unwrap();
        assert_eq!(
            pretty,
            "{\n  \"zebra\": 1,\n  \"apple\": {\n    \"y\": [\n      2\n    ],\n    \"b\": null\n  }\n}"
        );
        assert_eq!(pretty_json("not json"), None);
        assert_eq!(pretty_json("{} trailing"), None);
    }
}
