//! The HTTP side of the load generator: one keep-alive HTTP/1.1 connection
//! per worker (hyper), webhook bodies signed as the platform signs them, and
//! strict checks of every answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The secret every server under test is started with.
pub const SECRET: &str = "whsec_bench_secret_0123456789";

/// A `tool_call_id` never used before by this process. Switchboard answers
/// a repeated (call id, tool_call_id) from its de-duplication store without
/// running the plugin, so every request must carry a new one.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// No single request may take longer than this; past it, it is an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a server listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    host: String,
}

impl Endpoint {
    pub fn new(port: u16) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self { addr, host: addr.to_string() }
    }
}

/// One client connection, reopened when the server closes it (gunicorn's
/// sync workers close after every response).
#[derive(Default)]
pub struct Conn {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn sender(&mut self, ep: &Endpoint) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        let usable = match &mut self.sender {
            Some(sender) => !sender.is_closed() && sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let stream = tokio::net::TcpStream::connect(ep.addr).await.map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// Sends one request and reads the whole answer.
    async fn send(&mut self, ep: &Endpoint, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        self.exchange(ep, request).await.map(|(status, _, body)| (status, body))
    }

    /// [`Self::send`], with the answer's headers.
    async fn exchange(
        &mut self,
        ep: &Endpoint,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let exchange = async {
            let sender = self.sender(ep).await?;
            let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            let close =
                response.headers().get(header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok::<_, String>((status, parts.headers, body, close))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok((status, headers, body, close))) => {
                if close {
                    self.sender = None;
                }
                Ok((status, headers, body))
            }
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }

    /// POSTs the `tool-calls` webhook `body` to `/webhook`, signed with the
    /// current time, as the platform does.
    pub async fn post_webhook(&mut self, ep: &Endpoint, body: String) -> Result<(StatusCode, Bytes), String> {
        self.post_event(ep, "tool-calls", body).await
    }

    /// POSTs the webhook `body` of `event` (`status-update`, ...) to `/webhook`, signed.
    pub async fn post_event(
        &mut self,
        ep: &Endpoint,
        event: &str,
        body: String,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = signed_event(event, &body)
            .header(header::HOST, &ep.host)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(ep, request).await
    }

    /// POSTs the JSON-RPC message `body` to `/mcp` as an MCP client does:
    /// the suite's token, both answer types accepted, the session when open.
    async fn post_mcp(
        &mut self,
        ep: &Endpoint,
        session: Option<&str>,
        body: String,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header(header::HOST, &ep.host)
            .header(header::AUTHORIZATION, format!("Bearer {MCP_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("MCP-Protocol-Version", MCP_PROTOCOL);
        if let Some(session) = session {
            request = request.header("Mcp-Session-Id", session);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        self.exchange(ep, request).await
    }

    /// `GET path`.
    pub async fn get(&mut self, ep: &Endpoint, path: &str) -> Result<(StatusCode, Bytes), String> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, &ep.host)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(ep, request).await
    }
}

/// `POST /webhook` with the headers the platform sends for the `tool-calls`
/// webhook `body`: its content type, event, and a signature made with the
/// current time. The caller adds the body (and the `Host` header, over HTTP).
pub fn signed_webhook(body: &str) -> http::request::Builder {
    signed_event("tool-calls", body)
}

/// [`signed_webhook`] for a webhook of `event`.
pub fn signed_event(event: &str, body: &str) -> http::request::Builder {
    let timestamp = switchboard::unix_now();
    let signature = switchboard::sign(SECRET.as_bytes(), timestamp, body.as_bytes());
    Request::builder()
        .method(Method::POST)
        .uri("/webhook")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-webhook-event", event)
        .header("x-webhook-timestamp", timestamp.to_string())
        .header("x-webhook-signature", signature)
}

/// The call id of the spec fixtures, which every webhook of the load carries.
pub const FIXTURE_CALL_ID: &str = "5c4d030f-43e3-4e65-899e-8148521e660f";

/// A tool-calls webhook with one tool call, shaped like the spec fixture
/// `tool-calls.request.json`.
pub fn tool_calls_body(tool_call_id: &str, tool: &str, arguments: &str) -> String {
    tool_calls_body_of_call(FIXTURE_CALL_ID, tool_call_id, tool, arguments)
}

/// [`tool_calls_body`] on the call `call_id`.
pub fn tool_calls_body_of_call(call_id: &str, tool_call_id: &str, tool: &str, arguments: &str) -> String {
    format!(
        concat!(
            r#"{{"message":{{"type":"tool-calls","timestamp":"2025-12-13T12:00:00.000Z","#,
            r#""call":{{"id":"{call_id}","type":"inbound_phone_call","status":"in-progress"}},"#,
            r#""phone_number":{{"number":"+31850835037","name":"HMS Sovereign Demo"}},"#,
            r#""customer":{{"number":"+31612345678"}},"#,
            r#""tool_call_list":[{{"id":"{id}","type":"function","function":{{"name":"{tool}","arguments":{args}}}}}]}}}}"#
        ),
        call_id = call_id,
        id = tool_call_id,
        tool = tool,
        args = arguments,
    )
}

/// The echo arguments sent with request `seq`.
pub fn echo_arguments(seq: u64) -> String {
    format!(r#"{{"query":"John Smith","seq":{seq}}}"#)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer<'a> {
    #[serde(borrow)]
    results: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    tool_call_id: &'a str,
    #[serde(borrow)]
    result: &'a RawValue,
}

#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct EchoArgs<'a> {
    query: &'a str,
    seq: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoResult<'a> {
    #[serde(borrow)]
    echo: EchoArgs<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeResult<'a> {
    version: &'a str,
    #[serde(borrow)]
    echo: EchoArgs<'a>,
}

/// What a correct answer to one request looks like.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// `{"echo": {"query": "John Smith", "seq": SEQ}}`.
    Echo,
    /// `{"version": "a"|"b", "echo": {...}}` (the reload probe).
    Probe,
}

/// The one result of an answer: status 200, exactly one result, for
/// `tool_call_id`.
pub fn one_result<'a>(status: StatusCode, body: &'a [u8], tool_call_id: &str) -> Result<&'a str, String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != StatusCode::OK {
        return Err(format!("status {status}: {}", text()));
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("bad answer ({e}): {}", text()))?;
    let [entry] = answer.results.as_slice() else {
        return Err(format!("expected one result: {}", text()));
    };
    if entry.tool_call_id != tool_call_id {
        return Err(format!("wrong tool_call_id {:?} (expected {tool_call_id:?})", entry.tool_call_id));
    }
    Ok(entry.result.get())
}

/// Checks an answer to request `seq` ([`one_result`], with the expected
/// content). Returns the probe's version for [`Expect::Probe`].
pub fn check(
    status: StatusCode,
    body: &[u8],
    tool_call_id: &str,
    seq: u64,
    expect: Expect,
) -> Result<Option<char>, String> {
    let result = one_result(status, body, tool_call_id)?;
    let want = EchoArgs { query: "John Smith", seq };
    let (echo, version) = match expect {
        Expect::Echo => {
            let r: EchoResult = serde_json::from_str(result).map_err(|e| format!("wrong result ({e}): {result}"))?;
            (r.echo, None)
        }
        Expect::Probe => {
            let r: ProbeResult = serde_json::from_str(result).map_err(|e| format!("wrong result ({e}): {result}"))?;
            match r.version {
                "a" => (r.echo, Some('a')),
                "b" => (r.echo, Some('b')),
                other => return Err(format!("unknown probe version {other:?}")),
            }
        }
    };
    if echo != want {
        return Err(format!("wrong echo: {result}"));
    }
    Ok(version)
}

/// The bearer token of the MCP door of the suite's Switchboard servers
/// (`SWITCHBOARD_MCP_TOKENS`).
pub const MCP_TOKEN: &str = "bench-mcp-token";
/// The MCP protocol revision the suite speaks.
const MCP_PROTOCOL: &str = "2025-11-25";

/// Which door a load goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Signed `tool-calls` webhooks at `/webhook`.
    Webhook,
    /// MCP `tools/call` requests at `/mcp`, in a session per connection.
    Mcp,
}

/// Opens an MCP session (`initialize`, then `notifications/initialized`); its id.
pub async fn mcp_session(conn: &mut Conn, ep: &Endpoint) -> Result<String, String> {
    let init = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{MCP_PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"bench","version":"0"}}}}}}"#
    );
    let (status, headers, body) = conn.post_mcp(ep, None, init).await?;
    if status != StatusCode::OK {
        return Err(format!("MCP initialize: status {status}: {}", String::from_utf8_lossy(&body)));
    }
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("MCP initialize gave no session id")?
        .to_owned();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned();
    let (status, _, _) = conn.post_mcp(ep, Some(&session), initialized).await?;
    if status != StatusCode::ACCEPTED {
        return Err(format!("MCP notifications/initialized: status {status}"));
    }
    Ok(session)
}

/// The answer to MCP request `id` in `body`: the JSON-RPC response itself,
/// or the server-sent event (`data: <response>`) that carries it.
fn mcp_response(body: &[u8], id: u64) -> Result<serde_json::Value, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let whole = serde_json::from_str::<serde_json::Value>(text).ok().into_iter();
    let events = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok());
    whole.chain(events).find(|m| m["id"] == id).ok_or_else(|| format!("no answer to MCP request {id} in {text:?}"))
}

/// Sends one echo call for `tool` as an MCP `tools/call` in `session`
/// (opened first when `None`, and again after a failure) and checks it.
pub async fn mcp_call_tool(
    conn: &mut Conn,
    ep: &Endpoint,
    session: &mut Option<String>,
    tool: &str,
    seq: u64,
) -> Result<(), String> {
    if session.is_none() {
        *session = Some(mcp_session(conn, ep).await?);
    }
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":{seq},"method":"tools/call","params":{{"name":{},"arguments":{}}}}}"#,
        serde_json::Value::from(tool),
        echo_arguments(seq)
    );
    let checked = async {
        let (status, _, body) = conn.post_mcp(ep, session.as_deref(), call).await?;
        if status != StatusCode::OK {
            return Err(format!("MCP tools/call: status {status}: {}", String::from_utf8_lossy(&body)));
        }
        let message = mcp_response(&body, seq)?;
        let echo = &message["result"]["structuredContent"]["echo"];
        if echo["query"] != "John Smith" || echo["seq"] != seq || message["result"]["isError"] == true {
            return Err(format!("wrong MCP answer to call {seq}: {message}"));
        }
        Ok(())
    };
    let result = checked.await;
    if result.is_err() {
        *session = None;
    }
    result
}

/// Sends one echo-style call for `tool` and checks it.
pub async fn call_tool(
    conn: &mut Conn,
    ep: &Endpoint,
    tool: &str,
    id: &str,
    seq: u64,
    expect: Expect,
) -> Result<Option<char>, String> {
    let (status, body) = conn.post_webhook(ep, tool_calls_body(id, tool, &echo_arguments(seq))).await?;
    check(status, &body, id, seq, expect)
}
