//! Plugin kinds: one module per kind of step, registered in [`world`].
//!
//! A kind is the contract between a step and its plugin: the WIT worlds a
//! plugin may export for it (the kind's own world, and its `packed-` twin,
//! which the host prefers), their bindings, the one call per batch, and how
//! each result becomes the pipeline's [`Decision`]. Each kind's module
//! declares its two worlds with one [`worlds!`], which generates their
//! bindings;
//! everything outside this folder sees only [`World`] and [`Bound`].
//!
//! Adding a kind: its WIT worlds in `wit/plugin.wit`, a module here (a copy
//! of `filter.rs`, one `worlds!`, with its names changed), one arm in [`world`], a
//! [`Decision`] variant if its answer is new, and its SDK macro and
//! templates.

mod aggregate;
mod filter;
mod route;
mod transform;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{Event, Failure, Output, Window};
use super::host::HostState;
use super::{CallError, Decision};
use crate::config::StepKind;

/// Results of one call: per event, its decision or why the plugin failed it.
pub type Results = Vec<Result<Decision, Failure>>;

/// A started plugin and its `init`'s answer (`Err`: the settings refused).
pub type Started = (Box<dyn Bound>, Result<(), String>);

/// A pre-linked plugin of one kind, bound to one of the kind's worlds.
pub trait World: Send + Sync {
    /// The world the plugin exports (`filter`, `packed-filter`, …).
    fn name(&self) -> &'static str;

    /// Instantiates the plugin in `store` and calls its `init` with the
    /// step's settings. `Err` is a trap; the inner `Err` the plugin's refusal.
    fn start(&self, store: &mut Store<HostState>, settings: &str) -> Result<Started, CallError>;
}

/// What an aggregate's `fold` returns: the window's new state, and per
/// event whether it was folded.
pub type Folded = (String, Vec<Result<(), Failure>>);

/// A started plugin: the bindings of its world, ready for batches.
pub trait Bound: Send + Sync {
    /// Calls the world's one export on `batch` (payloads may be moved out
    /// and back for the call, never copied).
    fn call(&self, store: &mut Store<HostState>, batch: &mut [Event])
    -> Result<Results, CallError>;

    /// An `aggregate`'s `fold`: `batch` folded into the window's `state`.
    fn fold(
        &self,
        _store: &mut Store<HostState>,
        _window: &Window,
        _state: &str,
        _batch: &mut [Event],
    ) -> Result<Folded, CallError> {
        Err(wasmtime::format_err!("only an `aggregate` plugin folds"))
    }

    /// An `aggregate`'s `emit`: the window's outputs, or why it made none.
    fn emit(
        &self,
        _store: &mut Store<HostState>,
        _window: &Window,
        _state: &str,
    ) -> Result<Result<Vec<Output>, String>, CallError> {
        Err(wasmtime::format_err!("only an `aggregate` plugin emits"))
    }
}

/// The registry: binds a component to its step kind's world (the packed
/// twin if the plugin exports it, else the kind's own; the error names the
/// latter).
pub fn world(kind: StepKind, pre: InstancePre<HostState>) -> wasmtime::Result<Box<dyn World>> {
    match kind {
        StepKind::Filter => filter::world(pre),
        StepKind::Transform => transform::world(pre),
        StepKind::Route => route::world(pre),
        StepKind::Aggregate => aggregate::world(pre),
    }
}

/// Maps each result of a call to a [`Decision`].
fn each<T>(results: Vec<Result<T, Failure>>, decision: fn(T) -> Decision) -> Results {
    results.into_iter().map(|r| r.map(decision)).collect()
}

/// One call of a packed world: the payloads go back into `batch` whatever
/// the call did.
pub(super) fn packed<R>(
    batch: &mut [Event],
    call: impl FnOnce(&super::bindings::packed::Batch) -> Result<R, CallError>,
) -> Result<R, CallError> {
    let packed = super::packed::pack(batch)?;
    let r = call(&packed);
    super::packed::unpack(packed, batch);
    r
}

/// Declares a kind's two worlds: generates their bindings (modules `plain`
/// and `packed`) and takes from them the pre-instance and bound types of the plain world (`$plain`) and the packed one
/// (`$packed`), the export's `call_*` method and the [`Decision`] variant
/// its answers become. Defines the kind module's `world` function.
macro_rules! worlds {
    (
        plain: $plain:ident ($plain_pre:ty, $plain_bound:ty, $plain_name:literal),
        packed: $packed:ident ($packed_pre:ty, $packed_bound:ty, $packed_name:literal),
        call: $call:ident,
        decision: $decision:path $(,)?
    ) => {
        /// The kind's own world, as JavaScript, Python and C plugins export it.
        mod plain {
            wasmtime::component::bindgen!({
                world: $plain_name,
                path: "../wit",
                with: {
                    "sluice:plugin/types": crate::plugin::bindings::types,
                    "sluice:plugin/log": crate::plugin::bindings::log,
                    "sluice:plugin/tables": crate::plugin::bindings::tables,
                },
            });
        }

        /// Its packed twin, as the Rust SDK exports it.
        mod packed {
            wasmtime::component::bindgen!({
                world: $packed_name,
                path: "../wit",
                with: {
                    "sluice:plugin/types": crate::plugin::bindings::types,
                    "sluice:plugin/log": crate::plugin::bindings::log,
                    "sluice:plugin/tables": crate::plugin::bindings::tables,
                    "sluice:plugin/packed": crate::plugin::bindings::packed,
                },
            });
        }

        struct $plain($plain_pre);
        struct $packed($packed_pre);

        /// Binds the component to the packed world if it exports it, else
        /// to the plain one.
        pub(super) fn world(
            pre: wasmtime::component::InstancePre<$crate::plugin::HostState>,
        ) -> wasmtime::Result<Box<dyn super::World>> {
            Ok(match <$packed_pre>::new(pre.clone()) {
                Ok(p) => Box::new($packed(p)),
                Err(_) => Box::new($plain(<$plain_pre>::new(pre)?)),
            })
        }

        impl super::World for $plain {
            fn name(&self) -> &'static str {
                $plain_name
            }
            fn start(
                &self,
                store: &mut wasmtime::Store<$crate::plugin::HostState>,
                settings: &str,
            ) -> Result<super::Started, $crate::plugin::CallError> {
                let bound = self.0.instantiate(&mut *store)?;
                let init = bound.call_init(&mut *store, settings)?;
                Ok((Box::new(bound), init))
            }
        }

        impl super::World for $packed {
            fn name(&self) -> &'static str {
                $packed_name
            }
            fn start(
                &self,
                store: &mut wasmtime::Store<$crate::plugin::HostState>,
                settings: &str,
            ) -> Result<super::Started, $crate::plugin::CallError> {
                let bound = self.0.instantiate(&mut *store)?;
                let init = bound.call_init(&mut *store, settings)?;
                Ok((Box::new(bound), init))
            }
        }

        impl super::Bound for $plain_bound {
            fn call(
                &self,
                store: &mut wasmtime::Store<$crate::plugin::HostState>,
                batch: &mut [$crate::plugin::Event],
            ) -> Result<super::Results, $crate::plugin::CallError> {
                Ok(super::each(self.$call(store, batch)?, $decision))
            }
        }

        impl super::Bound for $packed_bound {
            fn call(
                &self,
                store: &mut wasmtime::Store<$crate::plugin::HostState>,
                batch: &mut [$crate::plugin::Event],
            ) -> Result<super::Results, $crate::plugin::CallError> {
                Ok(super::each(
                    super::packed(batch, |p| self.$call(&mut *store, p))?,
                    $decision,
                ))
            }
        }
    };
}
use worlds;
