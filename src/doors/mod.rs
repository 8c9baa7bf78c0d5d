//! The ways in: each door turns its protocol into calls on the [`Core`] and
//! the core's answers back into its protocol. None of them knows wasmtime.
//!
//! - [`webhook`]: the voice platform's signed webhooks (`POST /webhook`);
//! - [`mcp`]: the Model Context Protocol, for other agents (`/mcp`, stdio);
//! - [`ops`]: what operators ask: health, readiness, metrics, tools, plugins;
//! - [`call_api`]: the call log for operators and the dashboard (`/api/*`);
//! - [`ui`]: the dashboard at `/ui/`, static files that read the operator endpoints.
//!
//! [`http`] is the server in front of them all when Switchboard serves alone
//! ([`serve`](crate::serve)): connection cap, timeouts, early answers.
//! [`framing`] refuses requests whose length is ambiguous (request
//! smuggling), on every route.

pub(crate) mod access;
pub(crate) mod call_api;
pub(crate) mod framing;
pub(crate) mod http;
pub(crate) mod mcp;
pub(crate) mod ops;
pub(crate) mod ui;
pub(crate) mod webhook;

use std::sync::Arc;

use axum::Router;

use crate::core::Core;

/// Every door's routes over one core. `webhook` is `None` for a Switchboard
/// that serves no webhooks (started with [`Switchboard::start_local`](crate::Switchboard::start_local)),
/// `mcp` when MCP is off, and `operators` when the operator endpoints are
/// served on a listener of their own.
pub(crate) fn router(
    core: &Arc<Core>,
    webhook: Option<&Arc<webhook::WebhookDoor>>,
    mcp: Option<&Arc<mcp::McpDoor>>,
    operators: Option<&Arc<access::OperatorRule>>,
) -> Router {
    let mut router = ops::health_routes(core.clone());
    if let Some(rule) = operators {
        router = router.merge(ops::operator_routes(core.clone(), Some(rule.clone())));
        // The dashboard goes where the endpoints it reads are, open to all:
        // the page holds no data, and those endpoints enforce the rule.
        router = router.merge(ui::routes());
    }
    if let Some(door) = webhook {
        router = router.merge(webhook::routes(door.clone()));
    }
    if let Some(door) = mcp {
        router = router.merge(mcp::routes(door.clone()));
    }
    router.layer(framing::RefuseAmbiguousLayer)
}
