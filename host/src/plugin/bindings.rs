//! Host-side bindings of the interfaces every `sluice:plugin` world shares:
//! `types` (an [`Event`] is one Rust type whatever the step), `log` and
//! `tables` (the imports the host offers), `packed` and `window`. Each kind's worlds are bound in its
//! own module under [`super::kind`], which reuses these through `with`.

#![allow(missing_docs, reason = "generated code")]

/// The shared interfaces, generated through a world that uses them all
/// (`packed-aggregate`); its own export bindings are not used here.
mod shared {
    wasmtime::component::bindgen!({
        world: "packed-aggregate",
        path: "../wit",
        // A lookup that would hand the plugin more than its memory may
        // hold traps instead of making the host allocate it.
        imports: {
            "sluice:plugin/tables.get": trappable,
            "sluice:plugin/tables.get-many": trappable,
        },
    });
}

pub use shared::sluice::plugin::{log, packed, tables, types, window};
pub use types::{Event, Failure, Output};
pub use window::Window;
