//! The dashboard in a real browser: Debian's headless Chromium, driven over
//! the DevTools protocol, against a real server on loopback with the call
//! log on. A signed tool call must appear in the recent calls, open to its
//! timeline (arguments, result, the end-of-call report), and "try a tool"
//! must run echo and show its answer.
//!
//! With `SWITCHBOARD_SCREENSHOTS=<dir>` it also saves PNG screenshots of the
//! main views there (the ones in docs/screenshots/ come from this test).

use std::path::{Path, PathBuf};

use headless_chrome::protocol::cdp::{Emulation, Page};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{Value, json};
use switchboard::CallLogSettings;

use switchboard::Settings;

use crate::common::{SECRET, TestServer, code_cache, fixture, plugins_dir, tool_calls};

/// The call id of the spec's fixtures, used for the whole test call.
const CALL_ID: &str = "5c4d030f-43e3-4e65-899e-8148521e660f";
/// What the test types and looks for: it must come back from the plugin.
const SPOKEN: &str = "a table for two at eight";
const TRIED: &str = "tried from the dashboard";
const ADMIN_TOKEN: &str = "dashboard-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_appears_opens_to_its_timeline_and_try_a_tool_answers() {
    let chromium = chromium();
    let log = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["echo"], |s| s.call_log = Some(CallLogSettings::sqlite(log.path()))).await;

    // One call as the platform sends it: in progress, two tool calls (one
    // for a tool nobody serves), ended, and its end-of-call report; and an
    // earlier call from another number, so the list has more than one.
    let earlier = with_call(tool_calls(&[("tool-earlier", "echo", json!({"n": 1}))]), "call-earlier", "+31687654321");
    assert_eq!(server.send(&earlier).await.status(), 200);
    assert_eq!(server.send(&fixture("status-update.request.in-progress.json")).await.status(), 200);
    let body = tool_calls(&[
        ("tool-dashboard-1", "echo", json!({"booking": SPOKEN})),
        ("tool-dashboard-2", "transfer_to_mars", json!({})),
    ]);
    let response = server.send(&with_call(body, CALL_ID, "+31612345678")).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["results"][0]["result"], json!({"echo": {"booking": SPOKEN}}));
    assert_eq!(server.send(&fixture("status-update.request.ended.json")).await.status(), 200);
    assert_eq!(server.send(&fixture("end-of-call-report.request.json")).await.status(), 200);

    let url = format!("{}/ui/", server.url);
    let screenshots = std::env::var_os("SWITCHBOARD_SCREENSHOTS").map(PathBuf::from);
    // headless_chrome blocks: it drives the browser off the runtime, which
    // keeps serving the page and the API meanwhile.
    let driven = tokio::task::spawn_blocking(move || drive(&chromium, &url, screenshots.as_deref())).await;
    if let Err(e) = driven {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Off this machine the operator endpoints want the admin token: the page
/// asks for it, keeps it, and then shows what those endpoints answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_this_machine_the_page_asks_for_the_admin_token_and_then_shows_the_plugins() {
    let chromium = chromium();
    let Some(ip) = crate::mcp::non_loopback_address() else {
        eprintln!("this machine has no non-loopback address; the admin token case was not exercised");
        return;
    };
    let dir = plugins_dir(&["echo"]);
    let settings = Settings {
        plugins_dir: dir.path().to_owned(),
        secrets: vec![SECRET.into()],
        cache_dir: Some(code_cache()),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Settings::default()
    };
    let (_switchboard, port, _stop) = crate::ops::serve_everywhere(settings).await;
    let url = format!("http://{ip}:{port}/ui/");
    let driven = tokio::task::spawn_blocking(move || {
        let browser = launch(&chromium);
        let tab = browser.new_tab().unwrap();
        tab.navigate_to(&url).unwrap().wait_until_navigated().unwrap();
        let reason = wait(&tab, "#access:not([hidden])", "the admin token form").get_inner_text().unwrap();
        assert!(reason.contains("SWITCHBOARD_ADMIN_TOKEN"), "the form says why: {reason}");
        assert!(tab.find_element("#tools tr[data-tool]").is_err(), "no plugins are shown without the token");
        tab.find_element("#token-input").unwrap().focus().unwrap();
        tab.send_character(ADMIN_TOKEN).unwrap();
        tab.find_element("#token-form button").unwrap().click().unwrap();
        wait(&tab, r#"#tools tr[data-tool="echo"]"#, "echo in the tools table, with the token");
        wait(&tab, "#access[hidden]", "the token form gone");
        let kept = tab.evaluate("localStorage.getItem('switchboard.adminToken')", false).unwrap().value;
        assert_eq!(kept, Some(json!(ADMIN_TOKEN)), "the token is kept for the next visit");
    })
    .await;
    if let Err(e) = driven {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The browser's part, step by step; each wait is for content, up to
/// headless_chrome's 20 s default.
fn drive(chromium: &Path, url: &str, screenshots: Option<&Path>) {
    let browser = launch(chromium);
    let tab = browser.new_tab().unwrap();
    lay_out(&tab, LAPTOP, LAPTOP.height);

    // The overview: the plugin and its tool, and the call in the recent calls.
    tab.navigate_to(url).unwrap().wait_until_navigated().unwrap();
    let tool = wait(&tab, r#"#tools tr[data-tool="echo"]"#, "echo in the tools table").get_inner_text().unwrap();
    assert!(tool.contains("echo") && tool.contains("component"), "the tools table: {tool}");
    let row = format!(r#"#calls tr[data-call-id="{CALL_ID}"]"#);
    let summary = wait(&tab, &row, "the call in the recent calls").get_inner_text().unwrap();
    assert!(summary.contains("+31612345678"), "the call's row shows the customer's number: {summary}");
    wait(&tab, r#"#calls tr[data-call-id="call-earlier"]"#, "the earlier call in the recent calls");
    save(&tab, LAPTOP, screenshots, "overview.png");

    // One call's timeline, opened by a click on its row.
    tab.find_element(&format!("{row} a")).unwrap().click().unwrap();
    let echo = wait(&tab, r#"#timeline li[data-kind="tool_call"][data-tool="echo"]"#, "the echo call in the timeline");
    assert_eq!(echo.get_attribute_value("data-outcome").unwrap().as_deref(), Some("ok"));
    let arguments = echo.find_element(r#"[data-field="arguments"]"#).unwrap().get_inner_text().unwrap();
    assert!(arguments.contains(SPOKEN), "the tool call's arguments: {arguments}");
    let result = echo.find_element(r#"[data-field="result"]"#).unwrap().get_inner_text().unwrap();
    assert!(result.contains("\"echo\"") && result.contains(SPOKEN), "the tool call's result: {result}");
    let report =
        wait(&tab, r#"#timeline li[data-event="end-of-call-report"]"#, "the end-of-call report in the timeline")
            .get_inner_text()
            .unwrap();
    assert!(report.contains("opening hours"), "the report's summary: {report}");
    assert!(tab.get_url().ends_with(&format!("#/calls/{CALL_ID}")), "the call has its own URL: {}", tab.get_url());
    save(&tab, LAPTOP, screenshots, "call.png");

    // Try a tool: echo, with arguments typed into the form.
    tab.find_element(r#"nav a[data-nav="try"]"#).unwrap().click().unwrap();
    wait(&tab, r#"#try-tool option[value="echo"]"#, "echo in the tools to try");
    let arguments = tab.wait_until_visible("#try-arguments").unwrap();
    // Typed as text input (key by key takes a quarter second a key here).
    arguments.call_js_fn("function () { this.select(); }", vec![], false).unwrap();
    arguments.focus().unwrap();
    tab.send_character(&format!(r#"{{"note": "{TRIED}"}}"#)).unwrap();
    tab.find_element("#try-run").unwrap().click().unwrap();
    let output = wait(&tab, "#try-output[data-outcome]", "the answer of try a tool");
    let text = output.get_inner_text().unwrap();
    assert_eq!(output.get_attribute_value("data-outcome").unwrap().as_deref(), Some("ok"), "{text}");
    assert!(text.contains("\"echo\"") && text.contains(TRIED), "echo's answer: {text}");
    let status = tab.find_element("#try-status").unwrap().get_inner_text().unwrap();
    assert!(status.contains("echo answered in"), "the time it took: {status}");
    save(&tab, LAPTOP, screenshots, "try.png");

    // The overview at a phone's width.
    if screenshots.is_some() {
        lay_out(&tab, PHONE, PHONE.height);
        tab.navigate_to(url).unwrap().wait_until_navigated().unwrap();
        wait(&tab, &row, "the call in the recent calls, on a phone");
        wait(&tab, r#"#tools tr[data-tool="echo"]"#, "echo in the tools table, on a phone");
        save(&tab, PHONE, screenshots, "phone.png");
    }
}

/// Headless Chromium, laid out as a laptop's screen.
fn launch(chromium: &Path) -> Browser {
    Browser::new(LaunchOptions {
        path: Some(chromium.to_owned()),
        headless: true,
        // Tests run as root, where Chromium's sandbox cannot start.
        sandbox: false,
        window_size: Some((LAPTOP.width, LAPTOP.height)),
        ..LaunchOptions::default()
    })
    .expect("headless Chromium starts")
}

/// The element `selector` finds, once the page has it (up to 20 s); else a
/// failure that says what was awaited and what the page says instead.
fn wait<'a>(tab: &'a Tab, selector: &str, what: &str) -> headless_chrome::Element<'a> {
    tab.wait_for_element(selector).unwrap_or_else(|e| {
        let says = tab
            .evaluate(
                "[...document.querySelectorAll('#live, #access-reason, .card > p[id], #try-status')]\
                 .filter(e => e.checkVisibility()).map(e => e.innerText).filter(t => t).join(' | ')",
                false,
            )
            .ok()
            .and_then(|o| o.value)
            .unwrap_or_default();
        panic!("{what} never showed ({selector}: {e}); the page at {} says: {says}", tab.get_url())
    })
}

/// Debian's Chromium (`/usr/bin/chromium`), or one on the PATH; else the
/// test fails saying how to get it.
fn chromium() -> PathBuf {
    let known = [PathBuf::from("/usr/bin/chromium")];
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)));
    known.into_iter().chain(on_path).find(|path| path.is_file()).unwrap_or_else(|| {
        panic!(
            "headless Chromium is missing: the dashboard test drives it. Run ./test.sh (it installs Debian's \
             `chromium` package), or `apt-get install chromium`"
        )
    })
}

/// `body` with its call id and customer's number replaced.
fn with_call(body: Vec<u8>, call_id: &str, customer: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["message"]["call"]["id"] = json!(call_id);
    body["message"]["customer"]["number"] = json!(customer);
    serde_json::to_vec(&body).unwrap()
}

/// A screen the page is laid out on, in CSS pixels.
#[derive(Clone, Copy)]
struct Screen {
    width: u32,
    height: u32,
    mobile: bool,
}

const LAPTOP: Screen = Screen { width: 1280, height: 900, mobile: false };
const PHONE: Screen = Screen { width: 390, height: 844, mobile: true };

/// Lays the page out on `screen`, `height` pixels tall.
fn lay_out(tab: &Tab, screen: Screen, height: u32) {
    let metrics: Emulation::SetDeviceMetricsOverride = serde_json::from_value(json!({
        "width": screen.width,
        "height": height,
        "deviceScaleFactor": if screen.mobile { 2 } else { 1 },
        "mobile": screen.mobile,
    }))
    .unwrap();
    tab.call_method(metrics).unwrap();
}

/// Saves a PNG of the whole page (as tall as its content) as `dir/name`,
/// when screenshots are asked for.
fn save(tab: &Tab, screen: Screen, dir: Option<&Path>, name: &str) {
    let Some(dir) = dir else { return };
    let content = tab.call_method(Page::GetLayoutMetrics(None)).unwrap().css_content_size;
    lay_out(tab, screen, screen.height.max(content.height.ceil() as u32));
    let png = tab.capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
    lay_out(tab, screen, screen.height);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}
