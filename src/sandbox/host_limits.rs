//! Host memory one call makes Switchboard hold on its behalf, bounded per
//! call.
//!
//! A plugin's own linear memory is capped by its `memory_mib` (see
//! `limits.rs`). What the host allocates for it through WASI is not in that
//! memory: every resource it opens (a handle, a stream, a pollable), the
//! header fields and request lines it builds for `wasi:http`, the request
//! bodies it writes and the requests it sends. Without a cap a plugin with a
//! 16 MiB limit could hold gigabytes of header fields. Per call:
//!
//! - at most [`MAX_RESOURCES`] resources open at once (the resource table's
//!   capacity; each entry is small, what it holds is bounded below);
//! - header fields: one `fields` resource at most [`MAX_FIELDS_BYTES`], and
//!   all header fields, trailers and request lines (method, path, authority)
//!   the call holds at once, in its resources or in requests it has sent and
//!   not yet had answered, at most [`MAX_REQUEST_HEAD_BYTES`];
//! - request bodies: a write takes at most [`BODY_CHUNK_BYTES`], with one
//!   more chunk queued, and at most [`MAX_OPEN_REQUESTS`] requests are open
//!   at once (made with a body, or sent and not yet answered), so request
//!   bodies buffered in the host stay under 4 MiB.
//!
//! Going over a cap traps the call, which fails with
//! [`ToolFailure::HostLimit`](crate::types::ToolFailure::HostLimit) (a request
//! over the in-flight cap fails on its own instead, as an HTTP error).
//!
//! `wasi:http` caps each `fields` resource itself
//! ([`WasiHttpCtx::set_field_size_limit`](wasmtime_wasi_http::WasiHttpCtx::set_field_size_limit))
//! but not how many there are; the call-wide caps are enforced by the
//! functions [`add_to_linker`] puts in front of wasmtime's own for each
//! `wasi:http` operation that makes the host hold more.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceTableError};
use wasmtime_wasi_http::p2::bindings::http::types::{self as wit, HostFields, HostOutgoingRequest as _};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{FieldMap, FieldMapError, WasiHttpView};

/// Resources (handles, streams, pollables, HTTP fields and requests) one
/// call may hold open at once.
pub const MAX_RESOURCES: usize = 4096;

/// Bytes of one `fields` resource, as `wasi:http` counts them (each name and
/// value, plus a few dozen bytes per entry).
pub const MAX_FIELDS_BYTES: usize = 64 << 10;

/// Bytes of header fields, trailers and request lines one call may hold at
/// once, counted as [`MAX_FIELDS_BYTES`] counts them.
pub const MAX_REQUEST_HEAD_BYTES: usize = 1 << 20;

/// Largest write to a request body; the host queues one more.
pub const BODY_CHUNK_BYTES: usize = 8 << 10;

/// Requests one call may have open at once: made with a body, or sent and
/// not yet answered.
pub const MAX_OPEN_REQUESTS: usize = 256;

/// Where `wasi:http/types` is defined in the linker (wasmtime-wasi-http 48);
/// components importing any 0.2.x version link to it.
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// A call went over one of the caps above: the error its trap carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimitExceeded(String);

impl HostLimitExceeded {
    fn heads() -> Self {
        Self(format!(
            "it held more than {MAX_REQUEST_HEAD_BYTES} bytes of HTTP header fields and request lines at once"
        ))
    }

    fn requests() -> Self {
        Self(format!("it had more than {MAX_OPEN_REQUESTS} HTTP requests or request bodies open at once"))
    }

    /// The resource table is full.
    pub fn resources() -> Self {
        Self(format!(
            "it held more than {MAX_RESOURCES} resources (handles, streams, pollables, HTTP fields and requests) at once"
        ))
    }

    fn fields() -> Self {
        Self(format!("one set of HTTP header fields held more than {MAX_FIELDS_BYTES} bytes"))
    }

    /// Whether `error` (a trap) says a call went over a host cap; the cap's message.
    pub fn of(error: &wasmtime::Error) -> Option<Self> {
        if let Some(exceeded) = error.downcast_ref::<HostLimitExceeded>() {
            return Some(exceeded.clone());
        }
        if let Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields) = error.downcast_ref() {
            return Some(Self::fields());
        }
        matches!(error.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)).then(Self::resources)
    }
}

impl fmt::Display for HostLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostLimitExceeded {}

/// What a call's HTTP requests hold outside its resource table: requests
/// handed to the host (waiting for a place, sending, or being answered) and
/// the trailers of finished request bodies. Shared by the call's store and
/// its outbound-HTTP hooks. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HeldOutside(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Header, trailer and request-line bytes.
    head_bytes: AtomicUsize,
    /// Requests sent and not yet answered.
    requests: AtomicUsize,
}

impl HeldOutside {
    /// Counts `request`, sent by the call, until the returned guard is
    /// dropped (its connection is done). `None` when the call already has
    /// [`MAX_OPEN_REQUESTS`] requests out.
    pub fn send<B>(&self, request: &http::Request<B>) -> Option<HeldRequest> {
        let counts = &self.0;
        if counts.requests.fetch_add(1, Ordering::Relaxed) >= MAX_OPEN_REQUESTS {
            counts.requests.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let head_bytes = headers_size(request.headers()) + request.uri().to_string().len();
        counts.head_bytes.fetch_add(head_bytes, Ordering::Relaxed);
        Some(HeldRequest { counts: counts.clone(), head_bytes })
    }

    fn head_bytes(&self) -> usize {
        self.0.head_bytes.load(Ordering::Relaxed)
    }

    fn requests(&self) -> usize {
        self.0.requests.load(Ordering::Relaxed)
    }

    /// Trailers handed over with a finished body stay with it until it is
    /// sent; they count for the rest of the call.
    fn keep_trailers(&self, bytes: usize) {
        self.0.head_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A request counted by [`HeldOutside::send`], until dropped.
#[derive(Debug)]
pub struct HeldRequest {
    counts: Arc<Counts>,
    head_bytes: usize,
}

impl Drop for HeldRequest {
    fn drop(&mut self) {
        self.counts.requests.fetch_sub(1, Ordering::Relaxed);
        self.counts.head_bytes.fetch_sub(self.head_bytes, Ordering::Relaxed);
    }
}

/// A call's store data, as these limits need it.
pub trait HttpHostState: WasiHttpView {
    /// What the call's requests hold outside its resource table.
    fn held_outside(&self) -> &HeldOutside;
}

/// Bytes of one header entry, as `wasi:http` counts them.
fn entry_size(name: usize, value: usize) -> usize {
    name + value + size_of::<HeaderName>() + size_of::<HeaderValue>()
}

fn headers_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| entry_size(name.as_str().len(), value.len())).sum()
}

fn request_size(request: &HostOutgoingRequest) -> usize {
    let method = match &request.method {
        wit::Method::Other(method) => method.len(),
        _ => 0,
    };
    let line = |part: &Option<String>| part.as_ref().map_or(0, String::len);
    headers_size(&request.headers) + method + line(&request.path_with_query) + line(&request.authority)
}

/// Header and request-line bytes in `table`, and its requests with a body.
fn held_in(table: &mut ResourceTable) -> (usize, usize) {
    let (mut bytes, mut bodies) = (0, 0);
    for entry in table.iter_mut() {
        let entry: &(dyn Any + Send) = entry;
        if let Some(fields) = entry.downcast_ref::<FieldMap>() {
            bytes += headers_size(fields);
        } else if let Some(request) = entry.downcast_ref::<HostOutgoingRequest>() {
            bytes += request_size(request);
            bodies += usize::from(request.body.is_some());
        }
    }
    (bytes, bodies)
}

/// Refuses (traps) when holding `adding` more bytes of header fields or
/// request lines would take the call over [`MAX_REQUEST_HEAD_BYTES`].
fn check_heads<T: HttpHostState>(state: &mut T, adding: usize) -> wasmtime::Result<()> {
    let outside = state.held_outside().head_bytes();
    let (inside, _) = held_in(state.http().table);
    if inside.saturating_add(outside).saturating_add(adding) > MAX_REQUEST_HEAD_BYTES {
        return Err(HostLimitExceeded::heads().into());
    }
    Ok(())
}

/// Refuses (traps) a new request body when the call already has
/// [`MAX_OPEN_REQUESTS`] requests open.
fn check_bodies<T: HttpHostState>(state: &mut T) -> wasmtime::Result<()> {
    let outside = state.held_outside().requests();
    let (_, bodies) = held_in(state.http().table);
    if bodies + outside >= MAX_OPEN_REQUESTS {
        return Err(HostLimitExceeded::requests().into());
    }
    Ok(())
}

/// A `wasi:http` header result for the guest, or the trap it stands for.
fn header_result<R>(
    result: Result<R, wasmtime_wasi_http::p2::HeaderError>,
) -> wasmtime::Result<Result<R, wit::HeaderError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => error.downcast().map(Err),
    }
}

/// Puts the call-wide caps in front of the `wasi:http` operations that make
/// the host hold more: building header fields, setting request lines,
/// opening request bodies, handing over trailers. Call after wasmtime's own
/// `wasi:http` is in `linker`; fails if it is not where expected (so a
/// wasmtime upgrade cannot silently drop the caps).
pub fn add_to_linker<T: HttpHostState + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    // Without shadowing, defining a name that exists fails: proof that the
    // functions below replace wasmtime's, not stand beside them.
    linker.allow_shadowing(false);
    let probe =
        linker.instance(HTTP_TYPES)?.func_wrap("[method]fields.append", |_: StoreContextMut<'_, T>, (): ()| Ok(()));
    if probe.is_ok() {
        wasmtime::bail!("{HTTP_TYPES} is not in the linker: the per-call HTTP limits cannot be applied");
    }
    linker.allow_shadowing(true);
    let mut types = linker.instance(HTTP_TYPES)?;
    types.func_wrap(
        "[static]fields.from-list",
        |mut store: StoreContextMut<'_, T>, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let adding = entries.iter().map(|(name, value)| entry_size(name.len(), value.len())).sum();
            check_heads(store.data_mut(), adding)?;
            Ok((header_result(HostFields::from_list(&mut store.data_mut().http(), entries))?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.set",
        |mut store: StoreContextMut<'_, T>, (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let adding = values.iter().map(|value| entry_size(name.len(), value.len())).sum();
            check_heads(store.data_mut(), adding)?;
            Ok((header_result(HostFields::set(&mut store.data_mut().http(), fields, name, values))?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.append",
        |mut store: StoreContextMut<'_, T>, (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            check_heads(store.data_mut(), entry_size(name.len(), value.len()))?;
            Ok((header_result(HostFields::append(&mut store.data_mut().http(), fields, name, value))?,))
        },
    )?;
    types.func_wrap(
        "[method]fields.clone",
        |mut store: StoreContextMut<'_, T>, (fields,): (Resource<FieldMap>,)| {
            // A clone shares its map until changed, then copies it whole: count it now.
            let adding = headers_size(store.data_mut().http().table.get(&fields)?);
            check_heads(store.data_mut(), adding)?;
            Ok((HostFields::clone(&mut store.data_mut().http(), fields)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-method",
        |mut store: StoreContextMut<'_, T>, (request, method): (Resource<HostOutgoingRequest>, wit::Method)| {
            let adding = match &method {
                wit::Method::Other(name) => name.len(),
                _ => 0,
            };
            check_heads(store.data_mut(), adding)?;
            Ok((store.data_mut().http().set_method(request, method)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |mut store: StoreContextMut<'_, T>, (request, path): (Resource<HostOutgoingRequest>, Option<String>)| {
            check_heads(store.data_mut(), path.as_ref().map_or(0, String::len))?;
            Ok((store.data_mut().http().set_path_with_query(request, path)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        |mut store: StoreContextMut<'_, T>, (request, authority): (Resource<HostOutgoingRequest>, Option<String>)| {
            check_heads(store.data_mut(), authority.as_ref().map_or(0, String::len))?;
            Ok((store.data_mut().http().set_authority(request, authority)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store: StoreContextMut<'_, T>, (request,): (Resource<HostOutgoingRequest>,)| {
            check_bodies(store.data_mut())?;
            Ok((store.data_mut().http().body(request)?,))
        },
    )?;
    types.func_wrap(
        "[static]outgoing-body.finish",
        |mut store: StoreContextMut<'_, T>,
         (body, trailers): (Resource<HostOutgoingBody>, Option<Resource<FieldMap>>)| {
            let state = store.data_mut();
            let kept = match &trailers {
                Some(trailers) => headers_size(state.http().table.get(trailers)?),
                None => 0,
            };
            let finished = wasmtime_wasi_http::p2::bindings::http::types::HostOutgoingBody::finish(
                &mut state.http(),
                body,
                trailers,
            );
            // Leaving the table, the trailers wait with the body: still held.
            state.held_outside().keep_trailers(kept);
            let finished = match finished {
                Ok(()) => Ok(()),
                Err(error) => Err(error.downcast()?),
            };
            Ok((finished,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_out_are_counted_until_answered_and_capped() {
        let held = HeldOutside::default();
        let request = http::Request::builder().uri("http://a.example/path").header("x-a", "1").body(()).unwrap();
        let first = held.send(&request).unwrap();
        assert_eq!(held.requests(), 1);
        assert_eq!(held.head_bytes(), entry_size(3, 1) + "http://a.example/path".len());
        drop(first);
        assert_eq!((held.requests(), held.head_bytes()), (0, 0));
        let all: Vec<_> = (0..MAX_OPEN_REQUESTS).map(|_| held.send(&request).unwrap()).collect();
        assert!(held.send(&request).is_none(), "one more than the cap is refused");
        drop(all);
        assert!(held.send(&request).is_some());
    }

    #[test]
    fn a_full_resource_table_is_a_host_limit() {
        let mut table = ResourceTable::new();
        table.set_max_capacity(1);
        table.push(1u8).unwrap();
        let full = wasmtime::Error::from(table.push(2u8).unwrap_err()).context("[new_fields] pushing fields");
        assert_eq!(HostLimitExceeded::of(&full), Some(HostLimitExceeded::resources()));
        let exceeded = wasmtime::Error::from(HostLimitExceeded::heads()).context("wasm backtrace");
        assert_eq!(HostLimitExceeded::of(&exceeded), Some(HostLimitExceeded::heads()));
        let fields = wasmtime::Error::from(FieldMapError::TotalSizeTooBig);
        assert_eq!(HostLimitExceeded::of(&fields), Some(HostLimitExceeded::fields()));
        assert_eq!(HostLimitExceeded::of(&wasmtime::Error::msg("other")), None);
    }
}
