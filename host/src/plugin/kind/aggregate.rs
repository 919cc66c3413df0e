//! The `aggregate` kind: fold events into a state per tumbling window and
//! make outputs of it when the window closes (`wit/plugin.wit`, worlds
//! `aggregate` and `packed-aggregate`, since `sluice:plugin@0.1.2`).
//!
//! Unlike the other kinds it has no per-event answer: events pass the step
//! unchanged, and the pipeline folds them after delivery
//! ([`crate::pipeline`]), through [`Bound::fold`] and [`Bound::emit`].

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::{Bound, Folded, Results, Started, World};
use crate::plugin::bindings::{Event, Output, Window};
use crate::plugin::{CallError, HostState, Instance};

/// The kind's own world, as JavaScript, Python and C plugins export it.
mod plain {
    wasmtime::component::bindgen!({
        world: "aggregate",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
                    "sluice:plugin/tables": crate::plugin::bindings::tables,
            "sluice:plugin/window": crate::plugin::bindings::window,
        },
    });
}

/// Its packed twin, as the Rust SDK exports it.
mod packed {
    wasmtime::component::bindgen!({
        world: "packed-aggregate",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
                    "sluice:plugin/tables": crate::plugin::bindings::tables,
            "sluice:plugin/packed": crate::plugin::bindings::packed,
            "sluice:plugin/window": crate::plugin::bindings::window,
        },
    });
}

struct Plain(plain::AggregatePre<HostState>);
struct Packed(packed::PackedAggregatePre<HostState>);

/// Binds the component to the packed world if it exports it, else to the
/// plain one.
pub(super) fn world(pre: InstancePre<HostState>) -> wasmtime::Result<Box<dyn World>> {
    Ok(match packed::PackedAggregatePre::new(pre.clone()) {
        Ok(p) => Box::new(Packed(p)),
        Err(_) => Box::new(Plain(plain::AggregatePre::new(pre)?)),
    })
}

impl World for Plain {
    fn name(&self) -> &'static str {
        "aggregate"
    }
    fn start(&self, store: &mut Store<HostState>, settings: &str) -> Result<Started, CallError> {
        let bound = self.0.instantiate(&mut *store)?;
        let init = bound.call_init(&mut *store, settings)?;
        Ok((Box::new(bound), init))
    }
}

impl World for Packed {
    fn name(&self) -> &'static str {
        "packed-aggregate"
    }
    fn start(&self, store: &mut Store<HostState>, settings: &str) -> Result<Started, CallError> {
        let bound = self.0.instantiate(&mut *store)?;
        let init = bound.call_init(&mut *store, settings)?;
        Ok((Box::new(bound), init))
    }
}

/// What a per-event call of an aggregate says: there is none.
fn no_call() -> CallError {
    wasmtime::format_err!("an `aggregate` plugin folds batches; it has no per-event call")
}

impl Bound for plain::Aggregate {
    fn call(&self, _: &mut Store<HostState>, _: &mut [Event]) -> Result<Results, CallError> {
        Err(no_call())
    }
    fn fold(
        &self,
        store: &mut Store<HostState>,
        window: &Window,
        state: &str,
        batch: &mut [Event],
    ) -> Result<Folded, CallError> {
        self.call_fold(store, window, state, batch)
    }
    fn emit(
        &self,
        store: &mut Store<HostState>,
        window: &Window,
        state: &str,
    ) -> Result<Result<Vec<Output>, String>, CallError> {
        self.call_emit(store, window, state)
    }
}

impl Bound for packed::PackedAggregate {
    fn call(&self, _: &mut Store<HostState>, _: &mut [Event]) -> Result<Results, CallError> {
        Err(no_call())
    }
    fn fold(
        &self,
        store: &mut Store<HostState>,
        window: &Window,
        state: &str,
        batch: &mut [Event],
    ) -> Result<Folded, CallError> {
        super::packed(batch, |p| self.call_fold(&mut *store, window, state, p))
    }
    fn emit(
        &self,
        store: &mut Store<HostState>,
        window: &Window,
        state: &str,
    ) -> Result<Result<Vec<Output>, String>, CallError> {
        self.call_emit(store, window, state)
    }
}

impl Instance {
    /// An `aggregate` plugin's `fold`: `batch` folded into the window's
    /// `state`, within `timeout_ms` as [`Instance::call`]. The new state and
    /// one result per event, or `Err` when the call itself failed.
    pub fn fold(
        &mut self,
        window: &Window,
        state: &str,
        batch: &mut [Event],
        timeout_ms: u64,
    ) -> Result<Folded, CallError> {
        let (state, mut results) = self.guarded(batch, timeout_ms, |bound, store, batch| {
            bound.fold(store, window, state, batch)
        })?;
        self.bound_reasons(&mut results);
        Ok((state, results))
    }

    /// An `aggregate` plugin's `emit`: the window's outputs made of its
    /// final `state`, or the plugin's reason for making none.
    pub fn emit(
        &mut self,
        window: &Window,
        state: &str,
        timeout_ms: u64,
    ) -> Result<Result<Vec<Output>, String>, CallError> {
        self.guarded(&mut [], timeout_ms, |bound, store, _| {
            bound.emit(store, window, state)
        })
    }
}
