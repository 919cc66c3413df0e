//! Host-side bindings of the interfaces every `sluice:plugin` world shares:
//! `types` (an [`Event`] is one Rust type whatever the step), `log` (the
//! import the host offers) and `packed`. Each kind's worlds are bound in its
//! own module under [`super::kind`], which reuses these through `with`.

#![allow(missing_docs, reason = "generated code")]

/// The shared interfaces, generated through the one world that uses all
/// three (`packed-filter`); its own export bindings are not used here.
mod shared {
    wasmtime::component::bindgen!({
        world: "packed-filter",
        path: "../wit",
    });
}

pub use shared::sluice::plugin::{log, packed, types};
pub use types::{Event, Failure, Output};
