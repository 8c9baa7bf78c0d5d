//! The ways in: each door turns its protocol into calls on the [`Core`] and
//! the core's answers back into its protocol. None of them knows wasmtime.
//!
//! - [`webhook`]: the voice platform's signed webhooks (`POST /webhook`);
//! - [`ops`]: what operators ask: health, readiness, metrics, tools, plugins.

pub(crate) mod ops;
pub(crate) mod webhook;

use std::sync::Arc;

use axum::Router;

use crate::core::Core;

/// Every door's routes over one core. `webhook` is `None` for a Switchboard
/// that serves no webhooks (started with [`Switchboard::start_local`](crate::Switchboard::start_local)).
pub(crate) fn router(core: &Arc<Core>, webhook: Option<&Arc<webhook::WebhookDoor>>) -> Router {
    let router = ops::routes(core.clone());
    match webhook {
        Some(door) => router.merge(webhook::routes(door.clone())),
        None => router,
    }
}
