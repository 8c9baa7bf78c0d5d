//! BENCHMARKS.md, written from the measured figures only.

use std::fmt::Write;

use crate::extras::Timings;
use crate::load::LoadResult;
use crate::{CONCURRENCY, Figure, QUIET_CORES, RATE_CONCURRENCY, REWARM, Results, ServerResults, TARGET_CONCURRENCY};

fn thousands(n: f64) -> String {
    if !n.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", n.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(us: f64) -> String {
    match us {
        us if !us.is_finite() => "–".into(),
        us if us < 1000.0 => format!("{:.3}", us / 1e3),
        us => format!("{:.2}", us / 1e3),
    }
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() { format!("{v:.decimals$}") } else { "–".into() }
}

fn ratio(v: f64) -> String {
    if v.is_finite() { format!("{v:.2}×") } else { "–".into() }
}

fn server<'a>(r: &'a Results, key: &str) -> Option<&'a ServerResults> {
    r.http.iter().find(|s| s.key == key && s.failure.is_none())
}

fn run_at<'a>(r: &'a Results, key: &str, c: usize) -> Option<&'a LoadResult> {
    server(r, key)?.at(c)
}

fn measured<T>(figure: &Figure<T>) -> Option<&T> {
    figure.as_ref()?.as_ref().ok()
}

/// Writes `## title`, then the figure with `body`, or why it is missing.
/// Nothing when its section did not run.
fn section<T>(m: &mut String, title: &str, figure: &Figure<T>, body: impl FnOnce(&mut String, &T)) {
    let Some(figure) = figure else { return };
    let _ = writeln!(m, "## {title}\n");
    match figure {
        Ok(value) => body(m, value),
        Err(e) => {
            let _ = writeln!(m, "Not measured: {e}\n");
        }
    }
}

pub fn render(r: &Results) -> String {
    let mut md = String::new();
    let m = &mut md;
    let (warmup, measure) = r.durations;
    let _ = writeln!(
        m,
        "# Benchmarks\n\nWritten by `benches/run.sh` from the figures it measured in one run; do not edit by hand, \
         rerun it. Raw figures and server logs: `target/bench-work/` (`target/bench-work-quick/` for `--quick`).\n"
    );
    if r.quick {
        let _ = writeln!(
            m,
            "> **Quick run** ({warmup} s warm-up, {measure} s per figure, few samples): a smoke test of the suite; \
             its figures are noisy.\n"
        );
    }

    let _ = writeln!(m, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &r.machine {
        let _ = writeln!(m, "| {k} | {v} |");
    }
    let _ = writeln!(
        m,
        "\nThe load generator and the server share the machine's cores, as in the issue's calibration. The \
         *other load* column shows how many cores everything else used during each run; when it is not zero, \
         CPU per request is the steadier figure.\n"
    );
    if !r.quiet_waits.is_empty() {
        let waited: f64 = r.quiet_waits.iter().map(|w| w.1).sum();
        let noisy: Vec<String> = r
            .quiet_waits
            .iter()
            .filter(|w| w.2 >= QUIET_CORES)
            .map(|w| format!("{} ({:.2} cores)", w.0, w.2))
            .collect();
        let _ = writeln!(
            m,
            "Before each block of measurements the suite waits, up to 60 s (300 s per run), for other processes to \
             use less than {QUIET_CORES} cores. It waited {waited:.0} s in all; {}.\n",
            if noisy.is_empty() {
                "every block started on a quiet machine".to_owned()
            } else {
                format!("these blocks started with the machine still busy: {}", noisy.join(", "))
            }
        );
    }

    let _ = writeln!(
        m,
        "## Command\n\n```sh\n{}\n```\n\nIt installs express (npm) and a Python venv with fastapi, uvicorn[standard], \
         flask and gunicorn under `target/bench-deps/`, builds Switchboard, the native baseline, the load generator \
         and the plugins in release mode, then runs `benches/suite/`, which writes this file. `--quick` is a smoke \
         test of a few minutes; `--help` lists the options.\n",
        r.command_line
    );

    let rounds = r.http.iter().flat_map(|s| s.runs.iter()).map(|x| x.windows).max().unwrap_or(1);
    let windows = if rounds > 1 {
        format!(
            "All servers are started first, then measured **in turns**: at each load, {rounds} rounds of one window \
             per server, so that a slow spell of the machine falls on every server. Each figure adds up its \
             {rounds} windows of {:.1} s ({measure} s in all, after a {warmup} s warm-up before a server's first \
             window at a load and {:.0} s before the others): percentiles over all their requests, CPU over all \
             their answers.",
            measure / rounds as f64,
            warmup.min(REWARM.as_secs_f64()),
        )
    } else {
        format!("Each figure is a {warmup} s warm-up followed by a {measure} s measured window.")
    };
    let _ = writeln!(
        m,
        "## How it is measured\n\n\
         - **Load generator** (`benches/suite/load.rs`, Rust, tokio + hyper): N workers, each with one keep-alive \
         HTTP/1.1 connection (reopened when the server closes it, as gunicorn's sync workers do), send requests \
         back to back (closed loop) at N = {} connections. {windows}\n\
         - **Every request** is a `tool-calls` webhook shaped like the spec fixture, with a distinct \
         `tool_call_id` and arguments `{{\"query\":\"John Smith\",\"seq\":N}}`, signed as the platform signs \
         (`X-Webhook-Timestamp`, `X-Webhook-Signature: sha256=HMAC(secret, timestamp.body)`).\n\
         - **Every answer is checked**: status 200 and exactly \
         `{{\"results\":[{{\"tool_call_id\":ID,\"result\":{{\"echo\":ARGS}}}}]}}` for that request; anything else, or \
         a transport error, counts in *errors* (warm-up included).\n\
         - **Latency**: from sending the request to having read the whole answer.\n\
         - **Server CPU**: utime + stime from `/proc` of the server process and its descendants, over the measured \
         window, divided by its correct answers; *loadgen CPU* likewise for the load generator.\n\
         - **Environment**: default settings; no `RUST_LOG`, `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` (nor in the \
         in-process figures), as in production.\n\
         - **50% runs**: a fixed rate of half the server's best closed-loop throughput over {RATE_CONCURRENCY} \
         connections (a pacer thread releases requests as they fall due, in steps of ≥ 0.1 ms); latency from each \
         request's actual send. Each measured request (send time, latency, connection) is in \
         `timeline-SERVER-half-rate-W.csv` (window W) beside the raw figures.\n",
        CONCURRENCY.map(|c| c.to_string()).join(", ")
    );

    if !r.http.is_empty() {
        http_tables(m, r);
    }
    targets(m, r);
    section(
        m,
        "One tool call through the embedding API (`Switchboard::call_tool`: schema check, fresh instance, call)",
        &r.in_process,
        |m, p| {
            let _ = writeln!(
                m,
                "`Switchboard::start_local` with one plugin, then `call_tool` in a loop, one call at a time after a \
                 warm-up, every answer checked: the tool's schema check (echo's is an open object), a fresh store \
                 and instance from the pooling allocator, the call, the metrics. The on-demand allocator is no \
                 longer measured: the public API has no option for it.\n"
            );
            timings_table(m, &p.tool_calls, "calls");
            let _ = writeln!(
                m,
                "### One webhook through the router (in-process, no sockets)\n\n\
                 A signed `tool-calls` webhook with one `echo` call through `Switchboard::router()` with \
                 `tower::ServiceExt::oneshot` (default settings: signature check, decode, duplicate detection, \
                 schema check, the plugin call, the JSON answer), one at a time after a warm-up; every answer is \
                 checked. With no sockets, thread hand-offs or load generator, this is the steadier figure for \
                 changes to Switchboard's own code. Of its p50, the tool call above (echo) is {} µs.\n",
                p.tool_calls.first().map_or("–".into(), |t| num(t.p50_us, 1))
            );
            timings_table(m, std::slice::from_ref(&p.webhook), "requests");
            if let Some(mcp) = &p.mcp {
                let _ = writeln!(
                    m,
                    "### One MCP `tools/call` through the router (in-process, no sockets)\n\n\
                     The same `echo` call as an MCP client makes it, through the same `Switchboard::router()` \
                     (`/mcp`, with a bearer token, in one session opened first), run at once and answered as one \
                     JSON response (the door's short way for a call in a session); one at a time, every answer \
                     checked. MCP ÷ webhook = **{}×** at p50 (the issue's goal, ≤ 1.5× the webhook door's CPU per \
                     call, is judged under HTTP load in the MCP section below).\n",
                    num(mcp.p50_us / p.webhook.p50_us, 2)
                );
                timings_table(m, std::slice::from_ref(mcp), "requests");
            }
        },
    );
    section(m, "Hot reload", &r.reload, |m, rl| {
        let l = &rl.under_load;
        let samples: Vec<String> = rl.latencies_ms.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            m,
            "`switchboard serve` (default settings, watcher on) with one WASI-command plugin, `probe.wasm` ({} bytes, \
             from `benches/plugins/reload_probe`: version `a` answers `{{\"version\":\"a\",\"echo\":ARGS}}`, version \
             `b` the same with `\"b\"`). Each replacement writes a temporary file and renames it over `probe.wasm`, \
             alternating a and b, each with a distinct custom section, so every reload compiles (nothing from the \
             code cache).\n\n\
             From the start of the write until a call answers with the new version (polled every ~1 ms), {} reloads \
             one at a time on an idle server: median **{} ms**, max {} ms; until GET /plugins shows it: median {} ms. \
             All samples (ms): {}\n\n\
             Under continuous load ({} connections calling `probe` back to back, every answer checked) while the file \
             was replaced {} times (each time waiting until GET /plugins showed the new version, then 30 ms): {} \
             requests in {} s ({} answered by a, {} by b); **{} failed, {} wrong**. *Wrong* is a malformed answer, or \
             the old version answering a request sent after the new one was live and finished before the next swap \
             began. Reload under load: median {} ms, max {} ms.{}\n",
            rl.plugin_bytes,
            rl.latencies_ms.len(),
            num(rl.median_ms, 1),
            num(rl.max_ms, 1),
            num(rl.plugins_median_ms, 1),
            samples.join(", "),
            l.concurrency,
            l.reloads_requested,
            thousands(l.requests as f64),
            num(l.seconds, 1),
            thousands(l.answers_a as f64),
            thousands(l.answers_b as f64),
            l.failed,
            l.wrong,
            num(l.median_reload_ms, 1),
            num(l.max_reload_ms, 1),
            l.first_problem.as_deref().map(|p| format!(" First problem: `{p}`.")).unwrap_or_default()
        );
    });
    section(m, "Memory", &r.memory, |m, mem| {
        let _ = writeln!(
            m,
            "`switchboard serve` with `echo.wasm` and `misbehave.wasm`, misbehave granted outbound HTTP to a slow \
             server the suite runs on 127.0.0.1, which answers every GET after {} ms, and allowed as many calls at \
             once as are sent (its manifest: `max_concurrent_calls = {}`, `allowed_hosts = [{{ host = \
             \"http://127.0.0.1:PORT\", allow_private = true }}]`). {} webhooks, each calling misbehave's `http_get` \
             (a `wasi:http` request) on it, sent at once on as many connections; each answer is checked to carry its \
             own upstream body. Calls beyond the instance pool's room wait for a place, so the slow server may see \
             fewer at once. VmRSS of the server, sampled every 10 ms.\n\n\
             | figure | value |\n|---|---:|\n\
             | VmRSS idle (after start-up, before the calls) | {} MiB |\n\
             | VmRSS peak during the {} calls | {} MiB |\n\
             | VmHWM at the end (peak of the process's life) | {} MiB |\n\
             | calls answered correctly | {} of {} |\n\
             | time for all of them | {} s |\n\
             | slowest single call | {} ms |\n\
             | requests the slow server received | {} |\n\
             | most requests waiting there at once | {} |\n{}",
            mem.sleep_ms,
            mem.calls,
            mem.calls,
            num(mem.idle_rss_mib, 1),
            mem.calls,
            num(mem.peak_rss_mib, 1),
            num(mem.hwm_mib, 1),
            mem.completed_ok,
            mem.calls,
            num(mem.seconds, 2),
            num(mem.slowest_call_ms, 0),
            mem.upstream_requests,
            mem.upstream_max_concurrent,
            mem.first_error.as_deref().map(|e| format!("\nFirst error: `{e}`\n")).unwrap_or_default()
        );
    });
    section(m, "Start-up with 20 plugins", &r.startup, |m, s| {
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            m,
            "{} WASI-command plugins `cmd01.wasm` … `cmd{:02}.wasm` ({} bytes each): copies of `echo_command.wasm`, \
             each with its own custom section, so each has its own hash and is compiled on its own. Time from \
             spawning `switchboard serve` until GET /readyz answers 200 with all of them loaded (polled every 2 ms). \
             *Cold*: the code cache (`PLUGINS/.cache`) emptied first; *warm*: the cache the previous start filled.\n\n\
             | start | median ms | samples (ms) |\n|---|---:|---|\n\
             | cold (empty cache) | {} | {} |\n\
             | warm (cache filled) | {} | {} |\n",
            s.plugins,
            s.plugins,
            s.plugin_bytes,
            num(s.cold_median_ms, 1),
            list(&s.cold_ms),
            num(s.warm_median_ms, 1),
            list(&s.warm_ms)
        );
    });
    tiers_section(m, r);
    call_log_section(m, r);
    mcp_section(m, r);
    md
}

fn mcp_section(m: &mut String, r: &Results) {
    section(m, "MCP door against the webhook door (issue 14)", &r.mcp, |m, c| {
        let at = |key: &str| c.throughput.iter().find(|s| s.key == key).and_then(|s| s.at(TARGET_CONCURRENCY));
        let (webhook, mcp) = (at("switchboard-echo-webhook-door"), at(crate::mcp::MCP_KEY));
        let _ = writeln!(
            m,
            "Two `switchboard serve` (the same release binary, `echo.wasm`, the MCP door on with a token), measured \
             in turns at {TARGET_CONCURRENCY} connections as the servers above are: one sent signed `tool-calls` \
             webhooks of one `echo` call each, the other MCP `tools/call` requests of `echo` over HTTP (each \
             connection opens its MCP session once, `initialize` and `notifications/initialized`, then calls in \
             it; every answer is checked: `structuredContent` holds the echo).\n\n\
             | figure | goal | measured | met |\n|---|---|---|---|"
        );
        if let (Some(webhook), Some(mcp)) = (webhook, mcp) {
            let cpu = mcp.server_cpu_us_per_req / webhook.server_cpu_us_per_req;
            let _ = writeln!(
                m,
                "| server CPU per call, MCP ÷ webhook (echo, {TARGET_CONCURRENCY} connections, same run) | ≤ 1.5 | \
                 {} vs {} µs = {}× ({} vs {} req/s) | {} |",
                num(mcp.server_cpu_us_per_req, 1),
                num(webhook.server_cpu_us_per_req, 1),
                num(cpu, 2),
                thousands(mcp.rps),
                thousands(webhook.rps),
                if cpu <= 1.5 { "yes" } else { "**NO**" }
            );
        }
        let _ = writeln!(
            m,
            "\n| server | connections | req/s | p50 ms | p99 ms | server CPU µs/req | loadgen CPU µs/req | other load (cores) | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &c.throughput {
            for run in &s.runs {
                let _ = writeln!(m, "{}", load_row(&s.label, run));
            }
        }
        let _ = writeln!(m, "\nHow each server was started:\n");
        for s in &c.throughput {
            let _ = writeln!(m, "- {}: {}", s.label, s.how);
        }
        let _ = writeln!(m);
    });
}

fn call_log_section(m: &mut String, r: &Results) {
    section(m, "Call log (issue 18)", &r.call_log, |m, c| {
        let b = &c.big;
        let at = |key: &str| c.throughput.iter().find(|s| s.key == key).and_then(|s| s.at(TARGET_CONCURRENCY));
        let (on, off) = (at("switchboard-echo-log-on"), at("switchboard-echo-log-off"));
        let _ = writeln!(
            m,
            "Two `switchboard serve` (the same release binary, `echo.wasm`), one keeping the call log (default \
             settings: SQLite in a data folder of its own), one with `[call_log] enabled = false`, measured in turns \
             at {TARGET_CONCURRENCY} connections as the servers above are, but three times as long in six turns \
             (their ratio's goal is closer to 1 than a shorter measure tells apart on this shared machine). Every other Switchboard this suite starts \
             runs with the call log off, as they all ran before it existed, so that the figures of the other \
             sections stay comparable. Then a log of {} tool calls is built and read (below). \
             Goals are judged on the median of the samples (the visibility goal on its p99, here the maximum); the maximum is shown beside it.\n\n\
             | figure | goal | measured | met |\n|---|---|---|---|",
            thousands(b.tool_calls as f64)
        );
        let mut row = |figure: &str, goal: &str, measured: String, met: bool| {
            let _ = writeln!(m, "| {figure} | {goal} | {measured} | {} |", if met { "yes" } else { "**NO**" });
        };
        if let (Some(on), Some(off)) = (on, off) {
            let t = on.rps / off.rps;
            row(
                &format!("throughput, call log on ÷ off (echo, {TARGET_CONCURRENCY} connections, same run)"),
                "≥ 0.95",
                format!(
                    "{} vs {} req/s = {}×; CPU {} vs {} µs/req",
                    thousands(on.rps),
                    thousands(off.rps),
                    num(t, 3),
                    num(on.server_cpu_us_per_req, 1),
                    num(off.server_cpu_us_per_req, 1)
                ),
                t >= 0.95,
            );
        }
        let v = &c.visibility;
        row(
            "a tool call visible in `/api/calls` after its answer",
            "< 1 s",
            format!(
                "p50 {} ms, p99 {} ms, max {} ms ({} calls{}); on the large log: p50 {} ms, max {} ms",
                num(v.delay.median_ms, 1),
                num(v.delay.p99_ms, 1),
                num(v.delay.max_ms, 1),
                v.delay.samples_ms.len() + v.not_visible,
                if v.not_visible > 0 { format!(", {} not within 10 s", v.not_visible) } else { String::new() },
                num(b.visibility.delay.median_ms, 1),
                num(b.visibility.delay.max_ms, 1),
            ),
            v.not_visible == 0
                && b.visibility.not_visible == 0
                && v.delay.p99_ms.max(b.visibility.delay.p99_ms) < 1000.0,
        );
        row(
            &format!("`switchboard calls --call ID` on a log of {} tool calls", thousands(b.tool_calls as f64)),
            "< 100 ms",
            format!("median {} ms, max {} ms", num(b.cli_call.median_ms, 1), num(b.cli_call.max_ms, 1)),
            b.cli_call.median_ms < 100.0,
        );
        row(
            &format!(
                "dashboard first load, {} calls logged ({} tool calls)",
                thousands(b.calls as f64),
                thousands(b.tool_calls as f64)
            ),
            "< 1 s",
            format!("median {} ms, max {} ms", num(b.first_load.median_ms, 1), num(b.first_load.max_ms, 1)),
            b.first_load.median_ms < 1000.0,
        );

        let _ = writeln!(
            m,
            "\n### Throughput with the call log on and off\n\n\
             | server | connections | req/s | p50 ms | p99 ms | server CPU µs/req | loadgen CPU µs/req | other load (cores) | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &c.throughput {
            for run in &s.runs {
                let _ = writeln!(m, "{}", load_row(&s.label, run));
            }
        }
        let dropped = c.answered_tool_calls.saturating_sub(c.logged_tool_calls);
        let _ = writeln!(
            m,
            "\nThe log-on server's database held {} tool calls after its runs, of the {} it answered (warm-ups and \
             its readiness check included): {}. Each request is a `tool-calls` webhook with one tool call, so the \
             log gets one record per request (a `tool-calls` webhook is kept as its tool calls); all the load's webhooks carry the \
             spec fixture's call id, so they update one summary row.\n\nHow each server was started:\n",
            thousands(c.logged_tool_calls as f64),
            thousands(c.answered_tool_calls as f64),
            if dropped == 0 { "none dropped".to_owned() } else { format!("**{} dropped**", thousands(dropped as f64)) }
        );
        for s in &c.throughput {
            let _ = writeln!(m, "- {}: {}", s.label, s.how);
        }
        let samples =
            |s: &crate::call_log::Spread| s.samples_ms.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            m,
            "\n### A tool call visible after its answer\n\n\
             On an idle log-on server, {} signed `tool-calls` webhooks (echo), one at a time, each on a call of its \
             own; after each answer, `GET /api/calls/{{call_id}}` every ~1 ms (on a second connection) until it \
             shows the tool call. The writer gathers records for 50 ms before it writes a batch. Delay from having \
             read the answer (ms): {}\n",
            v.delay.samples_ms.len() + v.not_visible,
            samples(&v.delay)
        );
        let _ = writeln!(
            m,
            "### A log of {} tool calls\n\n\
             Built in {} s: a server (log on) logged two real calls, each a `status-update` (in progress), ten \
             `tool-calls` webhooks of one echo call each, a `status-update` (ended) and the spec's \
             `end-of-call-report`; in the second, the last tool call has arguments that are not an object \
             (`invalid_arguments`). The server stopped, their rows were copied in SQL into the server's own tables \
             (indexes in place) as {} calls with random UUIDs, every {}th a copy of the failed one, starting over \
             the last 24 hours, each lasting 3 minutes with its rows evenly spaced, inserted in time order so that \
             calls interleave as in a real log; each call has its summary row, and the counts were checked to add \
             up. {} calls ({} with a failed tool call), {} tool calls, {} webhooks; `calls.sqlite3` is **{} MB** \
             ({} bytes per tool call, webhooks included). No `ANALYZE` (the server runs none).\n\n\
             Each command is a fresh process, as a user runs it (`--data-dir` the log's folder, output read whole), \
             a different random call for each `--call`, after one untimed run of the same command (the binary and \
             the file in the page cache, as for any command run twice). Then `switchboard serve` on the log (ready {} ms after it \
             was spawned) for the dashboard and the API. {} samples each:\n\n\
             | what | median ms | max ms |\n|---|---:|---:|\n\
             | `switchboard --version` (a fresh process of the binary doing nothing: the floor) | {} | {} |\n\
             | `switchboard calls --call ID` | {} | {} |\n\
             | `switchboard calls` (the 20 most recent) | {} | {} |\n\
             | `switchboard calls --errors` | {} | {} |\n\
             | `switchboard calls --tool echo --errors` | {} | {} |\n\
             | dashboard first load: {} | {} | {} |\n\
             | `GET /api/calls/{{id}}` (a call's view), fresh connection | {} | {} |\n\
             | a tool call visible after its answer, on this log ({} calls) | {} | {} |\n\n\
             The dashboard's first load is timed as its page makes it, on two fresh connections as a browser opens \
             them, each answer read whole and checked (50 calls listed); the browser's parsing and rendering are \
             not included.\n",
            thousands(b.tool_calls as f64),
            num(b.build_s, 1),
            thousands(b.calls.saturating_sub(2) as f64),
            crate::call_log::FAILED_EVERY,
            thousands(b.calls as f64),
            thousands(b.failed_calls as f64),
            thousands(b.tool_calls as f64),
            thousands(b.webhooks as f64),
            num(b.file_bytes as f64 / 1e6, 0),
            num(b.file_bytes as f64 / b.tool_calls as f64, 0),
            num(b.serve_ready_ms, 0),
            b.cli_call.samples_ms.len(),
            num(b.version.median_ms, 1),
            num(b.version.max_ms, 1),
            num(b.cli_call.median_ms, 1),
            num(b.cli_call.max_ms, 1),
            num(b.cli_list.median_ms, 1),
            num(b.cli_list.max_ms, 1),
            num(b.cli_errors.median_ms, 1),
            num(b.cli_errors.max_ms, 1),
            num(b.cli_tool_errors.median_ms, 1),
            num(b.cli_tool_errors.max_ms, 1),
            crate::call_log::FIRST_LOAD,
            num(b.first_load.median_ms, 1),
            num(b.first_load.max_ms, 1),
            num(b.call_view.median_ms, 1),
            num(b.call_view.max_ms, 1),
            b.visibility.delay.samples_ms.len() + b.visibility.not_visible,
            num(b.visibility.delay.median_ms, 1),
            num(b.visibility.delay.max_ms, 1),
        );
    });
}

fn tiers_section(m: &mut String, r: &Results) {
    section(m, "Compile tiers: from a file landing to its first answer", &r.tiers, |m, t| {
        let opt_ms = |v: Option<f64>| v.map(|v| num(v / 1e3, 1)).unwrap_or_else(|| "not within 600 s".into());
        let call_ms = |t: &Option<Timings>| {
            t.as_ref().map(|t| format!("{} / {}", num(t.p50_us / 1e3, 2), num(t.p99_us / 1e3, 2))).unwrap_or("–".into())
        };
        let _ = writeln!(
            m,
            "Each example plugin lands (its manifest, then the `.wasm` renamed in) in the folder of a running \
             `switchboard serve` that does not have it yet; the clock starts at the rename and stops at the first \
             correct answer to a signed tool call (polled back to back). *Cold*: empty code cache, background \
             compiles off, so the figures and the peak memory are those of the first tier alone; *optimised \
             after*: a second cold landing with one background compile thread, until GET /plugins shows \
             `optimized`; *warm*: a third landing with both tiers in the cache. Calls: one at a time over HTTP \
             (webhook, signature, JSON), p50 / p99 in ms, on each tier. Peak memory: the server's VmHWM. \
             Plugins under 1 MiB compile optimised straight away (`[compile] baseline_min_kib`).\n\n\
             | language | plugin | MB | cold: first answer s | tier | optimised after s | warm: first answer s | tier | \
             baseline call ms | optimised call ms | idle MiB | peak to first answer MiB | peak to optimised MiB |\n\
             |---|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for l in &t.languages {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                l.language,
                l.plugin,
                num(l.bytes as f64 / 1e6, 1),
                num(l.cold_first_answer_ms / 1e3, 2),
                l.cold_tier,
                opt_ms(l.optimized_after_ms),
                num(l.warm_first_answer_ms / 1e3, 3),
                l.warm_tier,
                call_ms(&l.baseline_calls),
                call_ms(&l.optimized_calls),
                num(l.idle_rss_mib, 0),
                num(l.peak_first_answer_mib, 0),
                num(l.peak_until_optimized_mib, 0),
            );
        }
        let u = &t.under_compile;
        let phase = |p: &Option<Timings>| {
            p.as_ref()
                .map(|p| {
                    format!(
                        "{} calls, p50 {} ms, p99 {} ms, max {} ms",
                        p.count,
                        num(p.p50_us / 1e3, 2),
                        num(p.p99_us / 1e3, 2),
                        num(p.max_us / 1e3, 1)
                    )
                })
                .unwrap_or("none".into())
        };
        let _ = writeln!(
            m,
            "\n**Echo while {} large plugins compile.** A server serving `echo` gets {} new large plugins at once \
             (js_weather, py_faq and copies of go_world_clock, each copy naming its own tool in its manifest; {} MB \
             on average; empty cache), while one client calls echo one call at a time (5 ms apart). Baseline compiles (until all {} answer, {} s): {}. Background \
             optimised compiles (the next {} s, {} of {} optimised by then): {}. Failed calls: {}. Peak memory {} MiB.\n",
            u.plugins,
            u.plugins,
            num(u.plugin_bytes as f64 / 1e6, 1),
            u.plugins,
            num(u.baseline_phase_s, 1),
            phase(&u.baseline_phase),
            num(u.background_phase_s, 0),
            u.optimized,
            u.plugins,
            phase(&u.background_phase),
            u.failed,
            num(u.peak_rss_mib, 0),
        );
        let c = &t.start_cold;
        let _ = writeln!(
            m,
            "**A start with {} large plugins not yet compiled.** `switchboard serve` on a folder of `echo` (its code \
             cached by `switchboard compile`) and the same {} large plugins (empty cache for them): echo's first correct \
             answer {} ms after spawning the server, /readyz 200 (every plugin loaded) after {} s. Echo calls in \
             between (one at a time, 5 ms apart): {}. Failed calls: {}. Peak memory until all were loaded: {} MiB.\n",
            c.plugins,
            c.plugins,
            num(c.echo_first_answer_ms, 0),
            num(c.all_ready_ms / 1e3, 1),
            phase(&c.echo_calls),
            c.failed,
            num(c.peak_rss_mib, 0),
        );
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            m,
            "**Restart with every example cached.** `switchboard compile` filled an empty cache with the optimised \
             code of all {} examples in {} s; then `switchboard serve` on that cache, from spawning it to GET /readyz \
             with all {} loaded: median {} ms (samples: {}). Tiers right after: {}.\n",
            t.restart_plugins,
            num(t.compile_all_s, 1),
            t.restart_plugins,
            num(t.restart_median_ms, 0),
            list(&t.restart_ms),
            t.restart_tiers.join(", "),
        );
    });
}

fn timings_table(m: &mut String, rows: &[Timings], count: &str) {
    let _ = writeln!(m, "| plugin | {count} | p50 µs | p99 µs | mean µs | max µs |\n|---|---:|---:|---:|---:|---:|");
    for t in rows {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            t.plugin,
            thousands(t.count as f64),
            num(t.p50_us, 1),
            num(t.p99_us, 1),
            num(t.mean_us, 1),
            num(t.max_us, 1)
        );
    }
    let _ = writeln!(m);
}

fn http_tables(m: &mut String, r: &Results) {
    let _ = writeln!(
        m,
        "## Throughput, latency and CPU per request\n\n\
         | server | connections | req/s | p50 ms | p99 ms | server CPU µs/req | loadgen CPU µs/req | other load (cores) | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &r.http {
        if let Some(f) = &s.failure {
            let _ = writeln!(m, "| {} | – | failed: {} | | | | | | |", s.label, f.replace('|', "/"));
            continue;
        }
        for run in &s.runs {
            let _ = writeln!(m, "{}", load_row(&s.label, run));
        }
    }
    let all_runs = || r.http.iter().flat_map(|s| s.runs.iter().chain(&s.half_rate).map(move |run| (s, run)));
    let noisy: Vec<String> = all_runs()
        .filter(|(_, run)| run.other_cores >= QUIET_CORES)
        .map(|(s, run)| {
            let at = if run.target_rate.is_some() { "50%".to_owned() } else { run.concurrency.to_string() };
            format!("{} at {at} ({:.2} cores)", s.label, run.other_cores)
        })
        .collect();
    if !noisy.is_empty() {
        let _ = writeln!(
            m,
            "\n**Shared machine.** Other processes used {QUIET_CORES} cores or more during these runs, so their \
             figures are disturbed: {}.",
            noisy.join("; ")
        );
    }
    let _ = writeln!(m, "\nHow each server was started:\n");
    for s in &r.http {
        let _ = writeln!(m, "- {}: {}", s.label, s.how);
    }
    let failures: Vec<_> = all_runs().filter(|(_, run)| run.errors > 0).collect();
    if !failures.is_empty() {
        let _ = writeln!(m, "\nFirst error of each run that had errors:\n");
        for (s, run) in failures {
            let _ = writeln!(
                m,
                "- {} at {}: {} of {} requests; first: `{}`",
                s.label,
                run.target_rate.map_or(format!("{} connections", run.concurrency), |_| "50%".into()),
                run.errors,
                run.total_requests,
                run.first_error.as_deref().unwrap_or("?").replace('`', "'")
            );
        }
    }

    let halves: Vec<_> = r.http.iter().filter_map(|s| s.half_rate.as_ref().map(|h| (s, h))).collect();
    if !halves.is_empty() {
        let _ = writeln!(
            m,
            "\n### At 50% of the best closed-loop throughput ({RATE_CONCURRENCY} connections)\n\n\
             | server | target req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | other load (cores) | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (s, h) in halves {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                thousands(h.target_rate.unwrap_or(f64::NAN)),
                thousands(h.rps),
                ms(h.p50_us),
                ms(h.p99_us),
                ms(h.p999_us),
                num(h.server_cpu_us_per_req, 1),
                num(h.other_cores, 2),
                h.errors
            );
        }
    }

    if server(r, "switchboard-echo").is_some() {
        let _ = writeln!(
            m,
            "\n### Switchboard (echo) compared\n\n\
             Throughput ratio: Switchboard's req/s ÷ the other's (above 1: Switchboard serves more). CPU ratio: \
             Switchboard's server CPU per request ÷ the other's (below 1: Switchboard uses less).\n"
        );
        let mut header = String::from("| Switchboard echo ÷ |");
        let mut rule = String::from("|---|");
        for c in CONCURRENCY {
            let _ = write!(header, " req/s, {c} conn. | CPU/req, {c} conn. |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(m, "{header}\n{rule}");
        for s in r.http.iter().filter(|s| s.key != "switchboard-echo" && s.failure.is_none()) {
            let mut row = format!("| {} |", s.label);
            for c in CONCURRENCY {
                match (run_at(r, "switchboard-echo", c), s.at(c)) {
                    (Some(sb), Some(other)) => {
                        let cpu = sb.server_cpu_us_per_req / other.server_cpu_us_per_req;
                        let _ = write!(row, " {} | {} |", ratio(sb.rps / other.rps), ratio(cpu));
                    }
                    _ => row.push_str(" – | – |"),
                }
            }
            let _ = writeln!(m, "{row}");
        }
    }
    let _ = writeln!(m);
}

fn targets(m: &mut String, r: &Results) {
    let c = TARGET_CONCURRENCY;
    let _ = writeln!(
        m,
        "## Targets\n\n\
         Throughput and CPU targets are judged at {c} connections, every server measured in turns in this one \
         run (the load generator shares the machine's cores). The edge alone is the same server built with \
         `--features bench-no-plugin-call`: a tool call answers without running its plugin.\n\n\
         | figure | target | measured | met |\n|---|---|---|---|"
    );
    // One row: what was measured and whether it meets the target, or
    // `None` (not measured in this run).
    let mut row = |figure: &str, target: &str, measured: Option<(String, bool)>| {
        let (measured, met) = match measured {
            Some((text, true)) => (text, "yes"),
            Some((text, false)) => (text, "**NO**"),
            None => ("–".into(), "not measured"),
        };
        let _ = writeln!(m, "| {figure} | {target} | {measured} | {met} |");
    };
    let sb = run_at(r, "switchboard-echo", c);
    let reuse = run_at(r, "switchboard-echo-reuse", c);
    let edge = run_at(r, "switchboard-edge", c);
    let native = run_at(r, "native", c);
    // `a`'s throughput ÷ `b`'s, against a floor.
    let rps = |a: Option<&LoadResult>, b: Option<&LoadResult>, name: &str, floor: f64| {
        let (a, b) = (a?, b?);
        let t = a.rps / b.rps;
        Some((format!("{} vs {}{name} = {}", thousands(a.rps), thousands(b.rps), ratio(t)), t >= floor))
    };
    // `a`'s server CPU per request ÷ native's, against a ceiling.
    let cpu = |a: Option<&LoadResult>, ceiling: f64| {
        let (a, n) = (a?, native?);
        let (x, y) = (a.server_cpu_us_per_req, n.server_cpu_us_per_req);
        Some((format!("{} vs {} µs = {}", num(x, 1), num(y, 1), ratio(x / y)), x / y <= ceiling))
    };
    row("throughput, a fresh instance per call ÷ native", "≥ 0.45", rps(sb, native, " req/s", 0.45));
    row("throughput, with `max_instance_reuse = 256` ÷ native", "≥ 0.65", rps(reuse, native, " req/s", 0.65));
    row("server CPU per request ÷ native, a fresh instance per call", "≤ 3", cpu(sb, 3.0));
    row("server CPU per request ÷ native, with reuse", "≤ 2", cpu(reuse, 2.0));
    row("server CPU per request ÷ native, the edge alone (no plugin call)", "≤ 1.3", cpu(edge, 1.3));
    let faster = match (run_at(r, "express-cluster", c), run_at(r, "fastapi", c)) {
        (Some(e), Some(f)) if e.rps >= f.rps => Some((e, " (Express cluster)")),
        (Some(_), Some(f)) => Some((f, " (FastAPI)")),
        _ => None,
    };
    row(
        "fresh-instance throughput ÷ the faster of Express cluster and FastAPI",
        "≥ 4",
        faster.and_then(|(best, name)| rps(sb, Some(best), name, 4.0)),
    );
    row("fresh-instance throughput ÷ Flask on gunicorn", "≥ 10", rps(sb, run_at(r, "flask", c), "", 10.0));
    let half = |key: &str| server(r, key).and_then(|s| s.half_rate.as_ref());
    row(
        "p99 at half of Switchboard's maximum ÷ native's p99 at half of its own",
        "≤ 2",
        half("switchboard-echo").zip(half("native")).map(|(sb, n)| {
            let t = sb.p99_us / n.p99_us;
            let text = format!(
                "{} ms at {} req/s vs {} ms at {} req/s = {} ({} errors)",
                ms(sb.p99_us),
                thousands(sb.rps),
                ms(n.p99_us),
                thousands(n.rps),
                ratio(t),
                sb.errors
            );
            (text, t <= 2.0 && sb.errors == 0)
        }),
    );
    let errors = |switchboard_only: bool| -> u64 {
        let servers = r.http.iter().filter(|s| !switchboard_only || s.key.starts_with("switchboard"));
        servers.flat_map(|s| s.runs.iter().chain(&s.half_rate)).map(|x| x.errors).sum()
    };
    row(
        "wrong or failed answers (Switchboard, all runs)",
        "0",
        (!r.http.is_empty()).then(|| (format!("{} (all servers: {})", errors(true), errors(false)), errors(true) == 0)),
    );
    let call = measured(&r.in_process).and_then(|p| p.tool_calls.first());
    row(
        "one tool call (`call_tool`), echo: p50",
        "≤ 20 µs",
        call.map(|t| (format!("{} µs", num(t.p50_us, 1)), t.p50_us <= 20.0)),
    );
    row(
        "one tool call (`call_tool`), echo: p99",
        "≤ 100 µs",
        call.map(|t| (format!("{} µs", num(t.p99_us, 1)), t.p99_us <= 100.0)),
    );
    let reload = measured(&r.reload);
    row(
        "hot reload: write → new version answers (median)",
        "≤ 250 ms",
        reload.map(|rl| {
            let text = format!(
                "{} ms (max {} ms, {} samples)",
                num(rl.median_ms, 1),
                num(rl.max_ms, 1),
                rl.latencies_ms.len()
            );
            (text, rl.median_ms <= 250.0)
        }),
    );
    row(
        &format!("{} reloads under continuous load", reload.map_or(100, |rl| rl.under_load.reloads_requested)),
        "0 failed or wrong answers",
        reload.map(|rl| {
            let l = &rl.under_load;
            let text = format!(
                "{} failed, {} wrong of {} requests; {}/{} reloads seen",
                l.failed, l.wrong, l.requests, l.reloads_seen, l.reloads_requested
            );
            (text, l.failed == 0 && l.wrong == 0 && l.reloads_seen == l.reloads_requested)
        }),
    );
    let memory = measured(&r.memory);
    row(
        &memory.map_or("RSS with 1000 concurrent calls".into(), |mem| {
            format!("RSS with {} concurrent calls (each waiting {} ms on outbound HTTP)", mem.calls, mem.sleep_ms)
        }),
        "< 512 MiB, all complete",
        memory.map(|mem| {
            let text = format!(
                "peak {} MiB (idle {} MiB); {}/{} completed; the slow server received {} requests",
                num(mem.peak_rss_mib, 1),
                num(mem.idle_rss_mib, 1),
                mem.completed_ok,
                mem.calls,
                mem.upstream_requests
            );
            (
                text,
                mem.peak_rss_mib < 512.0 && mem.completed_ok == mem.calls && mem.upstream_requests == mem.calls as u64,
            )
        }),
    );
    let startup = measured(&r.startup);
    row(
        "start-up with 20 plugins, warm cache (median)",
        "< 300 ms",
        startup.map(|s| {
            let text = format!("{} ms (cold: {} ms)", num(s.warm_median_ms, 1), num(s.cold_median_ms, 1));
            (text, s.warm_median_ms < 300.0)
        }),
    );
    let _ = writeln!(
        m,
        "\nWhere a request's CPU goes, what was fixed and what was tried (a hand-written reading of \
         `benches/profile.sh`): [benches/PROFILE.md](benches/PROFILE.md).\n"
    );
}

/// One closed-loop run as a row of the throughput tables.
fn load_row(label: &str, run: &LoadResult) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        label,
        run.concurrency,
        thousands(run.rps),
        ms(run.p50_us),
        ms(run.p99_us),
        num(run.server_cpu_us_per_req, 1),
        num(run.client_cpu_us_per_req, 1),
        num(run.other_cores, 2),
        run.errors
    )
}
