//! BENCHMARKS.md, written from the measured figures only.

use std::fmt::Write;

use crate::load::LoadResult;
use crate::{CONCURRENCY, RATE_CONCURRENCY, Results, ServerResults, TARGET_CONCURRENCY};

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
    if !us.is_finite() {
        "–".into()
    } else if us < 1000.0 {
        format!("{:.3}", us / 1e3)
    } else {
        format!("{:.2}", us / 1e3)
    }
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() { format!("{v:.decimals$}") } else { "–".into() }
}

fn ratio(v: f64) -> String {
    if v.is_finite() { format!("{v:.2}×") } else { "–".into() }
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**NO**",
        None => "not measured",
    }
}

fn server<'a>(r: &'a Results, key: &str) -> Option<&'a ServerResults> {
    r.http.iter().find(|s| s.key == key && s.failure.is_none())
}

fn run_at<'a>(r: &'a Results, key: &str, c: usize) -> Option<&'a LoadResult> {
    server(r, key)?.at(c)
}

pub fn render(r: &Results) -> String {
    let mut md = String::new();
    let m = &mut md;
    let (warmup, measure) = r.durations;
    let _ = writeln!(m, "# Benchmarks\n");
    let _ = writeln!(
        m,
        "Written by `benches/run.sh` from the figures it measured in one run; do not edit by hand, rerun it. \
         Raw figures of the last run: `target/bench-work/results.json` (`target/bench-work-quick/` for \
         `--quick`), with the server logs beside them.\n"
    );
    if r.quick {
        let _ = writeln!(
            m,
            "> **Quick run** (`--quick`: {warmup} s warm-up, {measure} s per figure, few samples): a smoke test \
             of the suite. Its figures are noisy; use a full run for decisions.\n"
        );
    }

    let _ = writeln!(m, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &r.machine {
        let _ = writeln!(m, "| {k} | {v} |");
    }
    let _ = writeln!(
        m,
        "\nThe load generator and the server share the machine's cores, as in the issue's calibration. \
         The machine may be shared with other work: the *other load* column shows how many cores everything \
         else used during each run. CPU per request is the steadier figure when that is not zero.\n"
    );
    if !r.quiet_waits.is_empty() {
        let waited: f64 = r.quiet_waits.iter().map(|w| w.1).sum();
        let noisy: Vec<String> = r
            .quiet_waits
            .iter()
            .filter(|w| w.2 >= crate::QUIET_CORES)
            .map(|w| format!("{} ({:.2} cores)", w.0, w.2))
            .collect();
        let _ = writeln!(
            m,
            "Before each block of measurements the suite waits, up to 60 s (300 s per run), for other processes to \
             use less than {} cores. It waited {:.0} s in all; {}.\n",
            crate::QUIET_CORES,
            waited,
            if noisy.is_empty() {
                "every block started on a quiet machine".to_owned()
            } else {
                format!("these blocks started with the machine still busy: {}", noisy.join(", "))
            }
        );
    }

    let _ = writeln!(m, "## Command\n\n```sh\n{}\n```\n", r.command_line);
    let _ = writeln!(
        m,
        "`benches/run.sh` installs what it needs under `target/bench-deps/` (express from npm; a Python venv with \
         fastapi, uvicorn[standard], flask, gunicorn from PyPI), builds Switchboard, the native baseline and the \
         load generator in release mode, builds the plugins, then runs `benches/suite/` (the load generator and \
         the other measurements), which writes this file. `benches/run.sh --quick` is a smoke test of a few \
         minutes. `benches/run.sh --help` lists the options.\n"
    );

    let _ = writeln!(m, "## How it is measured\n");
    let rounds = r.http.iter().flat_map(|s| s.runs.iter()).map(|x| x.windows).max().unwrap_or(1);
    let windows = if rounds > 1 {
        format!(
            "All servers are started first, then measured **in turns**: at each load, {rounds} rounds of one \
             window per server, so that a slow spell of this shared machine falls on every server rather than \
             on whichever was being measured. Each figure adds up its {rounds} windows of {:.1} s ({measure} s \
             in all; a {warmup} s warm-up before a server's first window at a load, {:.0} s before the \
             others); its percentiles are over all their requests and its CPU per request is their CPU over \
             their answers.",
            measure / rounds as f64,
            warmup.min(crate::REWARM.as_secs_f64()),
        )
    } else {
        format!("Each figure is a {warmup} s warm-up followed by a {measure} s measured window.")
    };
    let _ = writeln!(
        m,
        "- **Load generator** (`benches/suite/load.rs`, Rust, tokio + hyper): N workers, each with one keep-alive \
         HTTP/1.1 connection (reopened when the server closes it, as gunicorn's sync workers do after every \
         response), send requests back to back (closed loop) at N = {} connections. {windows}\n\
         - **Every request** is a `tool-calls` webhook shaped like the spec fixture, with a distinct \
         `tool_call_id` and arguments `{{\"query\":\"John Smith\",\"seq\":N}}`, signed as the platform signs \
         (`X-Webhook-Timestamp`, `X-Webhook-Signature: sha256=HMAC(secret, timestamp.body)`).\n\
         - **Every answer is checked**: status 200 and exactly \
         `{{\"results\":[{{\"tool_call_id\":ID,\"result\":{{\"echo\":ARGS}}}}]}}` for that request. Anything else \
         (or a transport error) counts in *errors*, warm-up included.\n\
         - **Latency** is from sending the request to having read the whole answer, over the measured window.\n\
         - **Server CPU** is utime + stime from `/proc` of the server process and all its descendants (cluster \
         and worker processes), read before and after the measured window, divided by the correct answers in \
         it. *Loadgen CPU* is the same for the load generator.\n\
         - **Environment**: servers run with their default settings; `RUST_LOG`, `RUST_BACKTRACE` and \
         `RUST_LIB_BACKTRACE` are removed from their environment (and from the in-process figures), as in \
         production.\n\
         - **50% runs** send at a fixed rate of half the server's best closed-loop throughput, over \
         {RATE_CONCURRENCY} connections (a pacer thread releases requests as they fall due, in steps of ≥ 0.1 ms); \
         latency is measured from each request's actual send. Every measured request of these runs (send \
         time, latency, connection) is in `timeline-SERVER-half-rate-W.csv` (window W) beside the raw \
         figures.\n",
        CONCURRENCY.map(|c| c.to_string()).join(", ")
    );

    if r.sections.iter().any(|s| s == "http") {
        http_tables(m, r);
    }
    targets(m, r);
    if r.sections.iter().any(|s| s == "instantiation") {
        instantiation(m, r);
    }
    if r.sections.iter().any(|s| s == "reload") {
        reload(m, r);
    }
    if r.sections.iter().any(|s| s == "memory") {
        memory(m, r);
    }
    if r.sections.iter().any(|s| s == "startup") {
        startup(m, r);
    }
    md
}

fn http_tables(m: &mut String, r: &Results) {
    let _ = writeln!(m, "## Throughput, latency and CPU per request\n");
    let _ = writeln!(
        m,
        "| server | connections | req/s | p50 ms | p99 ms | server CPU µs/req | loadgen CPU µs/req | other load (cores) | errors |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &r.http {
        if let Some(f) = &s.failure {
            let _ = writeln!(m, "| {} | – | failed: {} | | | | | | |", s.label, f.replace('|', "/"));
            continue;
        }
        for run in &s.runs {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                run.concurrency,
                thousands(run.rps),
                ms(run.p50_us),
                ms(run.p99_us),
                num(run.server_cpu_us_per_req, 1),
                num(run.client_cpu_us_per_req, 1),
                num(run.other_cores, 2),
                run.errors
            );
        }
    }
    let noisy: Vec<String> = r
        .http
        .iter()
        .flat_map(|s| s.runs.iter().chain(s.half_rate.iter()).map(move |run| (s, run)))
        .filter(|(_, run)| run.other_cores >= crate::QUIET_CORES)
        .map(|(s, run)| {
            let what = if run.target_rate.is_some() { "50%".to_owned() } else { run.concurrency.to_string() };
            format!("{} at {what} ({:.2} cores)", s.label, run.other_cores)
        })
        .collect();
    if !noisy.is_empty() {
        let _ = writeln!(
            m,
            "\n**Shared machine.** Other processes used {} cores or more during these runs, so their figures are \
             disturbed and not comparable with runs on a quiet machine: {}.",
            crate::QUIET_CORES,
            noisy.join("; ")
        );
    }
    let _ = writeln!(m, "\nHow each server was started:\n");
    for s in &r.http {
        let _ = writeln!(m, "- {}: {}", s.label, s.how);
    }
    let failures: Vec<_> =
        r.http.iter().flat_map(|s| s.runs.iter().map(move |run| (s, run))).filter(|(_, run)| run.errors > 0).collect();
    if !failures.is_empty() {
        let _ = writeln!(m, "\nFirst error of each run that had errors:\n");
        for (s, run) in failures {
            let _ = writeln!(
                m,
                "- {} at {} connections: {} of {} requests; first: `{}`",
                s.label,
                run.concurrency,
                run.errors,
                run.total_requests,
                run.first_error.as_deref().unwrap_or("?").replace('`', "'")
            );
        }
    }

    let halves: Vec<_> = r.http.iter().filter_map(|s| s.half_rate.as_ref().map(|h| (s, h))).collect();
    if !halves.is_empty() {
        let _ = writeln!(m, "\n### At 50% of the best closed-loop throughput ({RATE_CONCURRENCY} connections)\n");
        let _ = writeln!(
            m,
            "| server | target req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | other load (cores) | errors |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        let _ = writeln!(m, "\n### Switchboard (echo) compared\n");
        let _ = writeln!(
            m,
            "Throughput ratio: Switchboard's req/s ÷ the other's (above 1: Switchboard serves more). \
             CPU ratio: Switchboard's server CPU per request ÷ the other's (below 1: Switchboard uses less).\n"
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
                let (Some(sb), Some(other)) = (run_at(r, "switchboard-echo", c), s.at(c)) else {
                    row.push_str(" – | – |");
                    continue;
                };
                let _ = write!(
                    row,
                    " {} | {} |",
                    ratio(sb.rps / other.rps),
                    ratio(sb.server_cpu_us_per_req / other.server_cpu_us_per_req)
                );
            }
            let _ = writeln!(m, "{row}");
        }
    }
    let _ = writeln!(m);
}

fn targets(m: &mut String, r: &Results) {
    let c = TARGET_CONCURRENCY;
    let _ = writeln!(m, "## Targets\n");
    let _ = writeln!(
        m,
        "Throughput targets are judged at {c} connections, as in the issue's calibration (native axum ≈ 90,000 \
         req/s at ≈ 11 µs CPU/request; Express cluster ≈ 17,000; FastAPI ≈ 16,000; Flask ≈ 5,000).\n"
    );
    let _ = writeln!(m, "| figure | target | measured | met |\n|---|---|---|---|");
    let sb = run_at(r, "switchboard-echo", c);
    let native = run_at(r, "native", c);
    let mut row = |figure: &str, target: &str, measured: String, ok: Option<bool>| {
        let _ = writeln!(m, "| {figure} | {target} | {measured} | {} |", met(ok));
    };
    match (sb, native) {
        (Some(sb), Some(n)) => {
            let t = sb.rps / n.rps;
            row(
                "throughput vs native",
                "≥ 0.6 × native",
                format!("{} vs {} req/s = {}", thousands(sb.rps), thousands(n.rps), ratio(t)),
                Some(t >= 0.6),
            );
            let cpu = sb.server_cpu_us_per_req / n.server_cpu_us_per_req;
            row(
                "CPU per request vs native",
                "≤ 2 × native",
                format!(
                    "{} vs {} µs = {}",
                    num(sb.server_cpu_us_per_req, 1),
                    num(n.server_cpu_us_per_req, 1),
                    ratio(cpu)
                ),
                Some(cpu <= 2.0),
            );
        }
        _ => {
            row("throughput vs native", "≥ 0.6 × native", "–".into(), None);
            row("CPU per request vs native", "≤ 2 × native", "–".into(), None);
        }
    }
    let express = run_at(r, "express-cluster", c);
    let fastapi = run_at(r, "fastapi", c);
    match (sb, express, fastapi) {
        (Some(sb), Some(e), Some(f)) => {
            let (name, best) = if e.rps >= f.rps { ("Express cluster", e) } else { ("FastAPI", f) };
            let t = sb.rps / best.rps;
            row(
                "throughput vs the faster of Express cluster and FastAPI",
                "≥ 3 ×",
                format!("{} vs {} ({name}) = {}", thousands(sb.rps), thousands(best.rps), ratio(t)),
                Some(t >= 3.0),
            );
        }
        _ => row("throughput vs the faster of Express cluster and FastAPI", "≥ 3 ×", "–".into(), None),
    }
    match (sb, run_at(r, "flask", c)) {
        (Some(sb), Some(f)) => {
            let t = sb.rps / f.rps;
            row(
                "throughput vs Flask",
                "≥ 10 ×",
                format!("{} vs {} = {}", thousands(sb.rps), thousands(f.rps), ratio(t)),
                Some(t >= 10.0),
            );
        }
        _ => row("throughput vs Flask", "≥ 10 ×", "–".into(), None),
    }
    match server(r, "switchboard-echo").and_then(|s| s.half_rate.as_ref()) {
        Some(h) => row(
            "p99 at 50% of max throughput",
            "≤ 2 ms",
            format!("{} ms at {} req/s (p50 {} ms; {} errors)", ms(h.p99_us), thousands(h.rps), ms(h.p50_us), h.errors),
            Some(h.p99_us <= 2000.0 && h.errors == 0),
        ),
        None => row("p99 at 50% of max throughput", "≤ 2 ms", "–".into(), None),
    }
    let errors: u64 = r.http.iter().flat_map(|s| s.runs.iter().chain(s.half_rate.iter())).map(|x| x.errors).sum();
    if r.sections.iter().any(|s| s == "http") {
        let sb_errors: u64 = r
            .http
            .iter()
            .filter(|s| s.key.starts_with("switchboard"))
            .flat_map(|s| s.runs.iter().chain(s.half_rate.iter()))
            .map(|x| x.errors)
            .sum();
        row(
            "wrong or failed answers (Switchboard, all runs)",
            "0",
            format!("{sb_errors} (all servers: {errors})"),
            Some(sb_errors == 0),
        );
    }
    let inst = r.instantiation.iter().find(|i| i.plugin == "echo.wasm" && i.pooling);
    match inst {
        Some(i) => {
            row(
                "instantiation + call, echo, pooling: p50",
                "≤ 20 µs",
                format!("{} µs", num(i.p50_us, 1)),
                Some(i.p50_us <= 20.0),
            );
            row(
                "instantiation + call, echo, pooling: p99",
                "≤ 100 µs",
                format!("{} µs", num(i.p99_us, 1)),
                Some(i.p99_us <= 100.0),
            );
        }
        None => {
            row("instantiation + call, echo, pooling: p50", "≤ 20 µs", "–".into(), None);
            row("instantiation + call, echo, pooling: p99", "≤ 100 µs", "–".into(), None);
        }
    }
    match &r.reload {
        Some(rl) if rl.available => {
            row(
                "hot reload: write → new version answers (median)",
                "≤ 250 ms",
                format!(
                    "{} ms (max {} ms, {} samples)",
                    num(rl.median_ms, 1),
                    num(rl.max_ms, 1),
                    rl.latencies_ms.len()
                ),
                Some(rl.median_ms <= 250.0),
            );
            match &rl.under_load {
                Some(l) => row(
                    &format!("{} reloads under continuous load", l.reloads_requested),
                    "0 failed or wrong answers",
                    format!(
                        "{} failed, {} wrong of {} requests; {}/{} reloads seen",
                        l.failed, l.wrong, l.requests, l.reloads_seen, l.reloads_requested
                    ),
                    Some(l.failed == 0 && l.wrong == 0 && l.reloads_seen == l.reloads_requested),
                ),
                None => row("reloads under continuous load", "0 failed or wrong answers", "–".into(), None),
            }
        }
        Some(rl) => {
            row("hot reload latency", "≤ 250 ms", format!("pending: {}", rl.note), None);
            row("100 reloads under continuous load", "0 failed or wrong answers", "pending".into(), None);
        }
        None => {
            let why = r.reload_error.clone().unwrap_or_else(|| "–".into());
            row("hot reload latency", "≤ 250 ms", why.clone(), None);
            row("100 reloads under continuous load", "0 failed or wrong answers", why, None);
        }
    }
    match &r.memory {
        Some(mem) => row(
            &format!("RSS with {} concurrent calls (each waiting {} ms on outbound HTTP)", mem.calls, mem.sleep_ms),
            "< 512 MiB, all complete",
            format!(
                "peak {} MiB (idle {} MiB); {}/{} completed; the slow server received {} requests",
                num(mem.peak_rss_mib, 1),
                num(mem.idle_rss_mib, 1),
                mem.completed_ok,
                mem.calls,
                mem.upstream_requests
            ),
            Some(
                mem.peak_rss_mib < 512.0 && mem.completed_ok == mem.calls && mem.upstream_requests == mem.calls as u64,
            ),
        ),
        None => row(
            "RSS with 1,000 concurrent calls",
            "< 512 MiB",
            r.memory_error.clone().unwrap_or_else(|| "–".into()),
            None,
        ),
    }
    match &r.startup {
        Some(s) => row(
            &format!("start-up with {} plugins, warm cache (median)", s.plugins),
            "< 300 ms",
            format!("{} ms (cold: {} ms)", num(s.warm_median_ms, 1), num(s.cold_median_ms, 1)),
            Some(s.warm_median_ms < 300.0),
        ),
        None => row(
            "start-up with 20 plugins, warm cache",
            "< 300 ms",
            r.startup_error.clone().unwrap_or_else(|| "–".into()),
            None,
        ),
    }
    let _ = writeln!(
        m,
        "\nWhere a request's CPU goes, what was fixed and what was tried (a hand-written reading of \
         `benches/profile.sh`): [benches/PROFILE.md](benches/PROFILE.md).\n"
    );
}

fn instantiation(m: &mut String, r: &Results) {
    let _ = writeln!(m, "## Instantiation per call (in-process, no HTTP)\n");
    let _ = writeln!(
        m,
        "The library API (`Runtime::load`, then `Plugin::call` in a loop, one call at a time, after a warm-up): each \
         call gets a fresh store and instance, runs the tool and is torn down, as in the server. Times are the \
         whole `call` (instantiate, pass arguments, run, read the result).\n"
    );
    if let Some(e) = &r.instantiation_error {
        let _ = writeln!(m, "Error: {e}\n");
    }
    let _ = writeln!(
        m,
        "| plugin | allocator | calls | p50 µs | p99 µs | mean µs | max µs |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for i in &r.instantiation {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i.plugin,
            if i.pooling { "pooling" } else { "on-demand (`disable_pooling`)" },
            thousands(i.calls as f64),
            num(i.p50_us, 1),
            num(i.p99_us, 1),
            num(i.mean_us, 1),
            num(i.max_us, 1)
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(m, "### One webhook through the router (in-process, no sockets)\n");
    let _ = writeln!(
        m,
        "A `tool-calls` webhook with one `echo` call, signed as the platform signs, sent through \
         `Switchboard::router()` with `tower::ServiceExt::oneshot` (default settings: signature check, decode, \
         duplicate detection, schema check, the plugin call, the JSON answer), one at a time after a warm-up; every \
         answer is checked. Without sockets, threads handing work over or a load generator, this is the \
         steadier figure for changes to Switchboard's own code. The plugin call's share is the *instantiation + \
         call* figure above.\n"
    );
    match (&r.request, &r.request_error) {
        (Some(q), _) => {
            let call = r.instantiation.iter().find(|i| i.plugin == q.plugin && i.pooling);
            let _ = writeln!(
                m,
                "| plugin | requests | p50 µs | p99 µs | mean µs | of which the plugin call (p50 µs) |\n\
                 |---|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} |\n",
                q.plugin,
                thousands(q.requests as f64),
                num(q.p50_us, 1),
                num(q.p99_us, 1),
                num(q.mean_us, 1),
                call.map_or("–".into(), |c| num(c.p50_us, 1))
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(m, "Error: {e}\n");
        }
        (None, None) => {
            let _ = writeln!(m, "Not measured in this run.\n");
        }
    }
}

fn reload(m: &mut String, r: &Results) {
    let _ = writeln!(m, "## Hot reload\n");
    let Some(rl) = &r.reload else {
        let _ = writeln!(m, "Not measured: {}\n", r.reload_error.as_deref().unwrap_or("?"));
        return;
    };
    let _ = writeln!(
        m,
        "`switchboard serve` (default settings, watcher on) with one WASI-command plugin, `probe.wasm` \
         ({} bytes, built from `benches/plugins/reload_probe`: version `a` answers `{{\"version\":\"a\",\"echo\":ARGS}}`, \
         version `b` the same with `\"b\"`). Each replacement writes a temporary file and renames it over \
         `probe.wasm`, alternating a and b; every file written has a distinct custom section, so every reload \
         is a new version that must be compiled (nothing comes from the code cache).\n",
        rl.plugin_bytes
    );
    if !rl.available {
        let _ = writeln!(m, "**Pending**: {}\n", rl.note);
        return;
    }
    let _ = writeln!(
        m,
        "Latency, from the start of the write until a call answers with the new version (polled every ~1 ms), \
         {} reloads, one at a time on an idle server: median **{} ms**, max {} ms. Until GET /plugins shows \
         the new version: median {} ms.\n",
        rl.latencies_ms.len(),
        num(rl.median_ms, 1),
        num(rl.max_ms, 1),
        num(median(&rl.plugins_latencies_ms), 1),
    );
    let samples: Vec<String> = rl.latencies_ms.iter().map(|v| format!("{v:.0}")).collect();
    let _ = writeln!(m, "All samples (ms): {}\n", samples.join(", "));
    if let Some(l) = &rl.under_load {
        let _ = writeln!(
            m,
            "Under continuous load ({} connections calling `probe` back to back, every answer checked) while the \
             file was replaced {} times (each time waiting until GET /plugins showed the new version, then 30 ms): \
             {} requests in {} s ({} answered by a, {} by b); **{} failed, {} wrong**. *Wrong* is a malformed \
             answer, or the old version answering a request sent after the new one was live and finished before \
             the next swap began. Reload under load: median {} ms, max {} ms.{}\n",
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
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn memory(m: &mut String, r: &Results) {
    let _ = writeln!(m, "## Memory\n");
    let Some(mem) = &r.memory else {
        let _ = writeln!(m, "Not measured: {}\n", r.memory_error.as_deref().unwrap_or("?"));
        return;
    };
    let _ = writeln!(
        m,
        "`switchboard serve` with `echo.wasm` and `misbehave.wasm` loaded, misbehave granted outbound HTTP to a \
         slow HTTP server that the suite runs on 127.0.0.1 (its manifest: `allowed_hosts = [{{ host = \
         \"http://127.0.0.1:PORT\", allow_private = true }}]`). The server answers every GET after {} ms with a \
         small JSON body. {} webhooks, each with one call of misbehave's `http_get` tool on that server (a \
         `wasi:http` request), sent at once on {} connections; each answer is checked to carry its own request's \
         upstream body. VmRSS of the server process, sampled every 10 ms.\n",
        mem.sleep_ms, mem.calls, mem.calls
    );
    let _ = writeln!(m, "| figure | value |\n|---|---:|");
    let _ = writeln!(m, "| VmRSS idle (after start-up, before the calls) | {} MiB |", num(mem.idle_rss_mib, 1));
    let _ = writeln!(m, "| VmRSS peak during the {} calls | {} MiB |", mem.calls, num(mem.peak_rss_mib, 1));
    let _ = writeln!(m, "| VmHWM at the end (peak of the process's life) | {} MiB |", num(mem.hwm_mib, 1));
    let _ = writeln!(m, "| calls answered correctly | {} of {} |", mem.completed_ok, mem.calls);
    let _ = writeln!(m, "| time for all of them | {} s |", num(mem.seconds, 2));
    let _ = writeln!(m, "| slowest single call | {} ms |", num(mem.slowest_call_ms, 0));
    let _ = writeln!(m, "| requests the slow server received | {} |", mem.upstream_requests);
    let _ = writeln!(m, "| most requests waiting there at once | {} |", mem.upstream_max_concurrent);
    if let Some(e) = &mem.first_error {
        let _ = writeln!(m, "\nFirst error: `{e}`");
    }
    let _ = writeln!(m);
}

fn startup(m: &mut String, r: &Results) {
    let _ = writeln!(m, "## Start-up with 20 plugins\n");
    let Some(s) = &r.startup else {
        let _ = writeln!(m, "Not measured: {}\n", r.startup_error.as_deref().unwrap_or("?"));
        return;
    };
    let _ = writeln!(
        m,
        "{} WASI-command plugins `cmd01.wasm` … `cmd{:02}.wasm` ({} bytes each): copies of `echo_command.wasm`, \
         each with a different custom section appended so each has its own hash and is compiled on its own. \
         Time from spawning `switchboard serve` until GET /readyz answers 200 with all {} plugins loaded \
         (polled every 2 ms). *Cold*: the code cache (`PLUGINS/.cache`) emptied first; *warm*: the cache the \
         previous start filled.\n",
        s.plugins, s.plugins, s.plugin_bytes, s.plugins
    );
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(m, "| start | median ms | samples (ms) |\n|---|---:|---|");
    let _ = writeln!(m, "| cold (empty cache) | {} | {} |", num(s.cold_median_ms, 1), list(&s.cold_ms));
    let _ = writeln!(m, "| warm (cache filled) | {} | {} |", num(s.warm_median_ms, 1), list(&s.warm_ms));
    let _ = writeln!(m);
}
