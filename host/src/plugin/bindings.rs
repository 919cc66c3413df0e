//! The one `bindgen!` site: host-side bindings of the `sluice:plugin` worlds.
//!
//! The `filter` world's bindings own the shared `types` and `log` interfaces,
//! and `packed-filter`'s own the `packed` interface; the other worlds reuse
//! them through `with`, so an [`Event`] is one Rust type whatever the step.

#![allow(missing_docs, reason = "generated code")]

/// The `filter` world (and the shared interfaces).
pub mod filter {
    wasmtime::component::bindgen!({
        world: "filter",
        path: "../wit",
    });
}

/// The `transform` world.
pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::filter::sluice::plugin::types,
            "sluice:plugin/log": super::filter::sluice::plugin::log,
        },
    });
}

/// The `route` world.
pub mod route {
    wasmtime::component::bindgen!({
        world: "route",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::filter::sluice::plugin::types,
            "sluice:plugin/log": super::filter::sluice::plugin::log,
        },
    });
}

/// The `packed-filter` world (and the `packed` interface).
pub mod packed_filter {
    wasmtime::component::bindgen!({
        world: "packed-filter",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::filter::sluice::plugin::types,
            "sluice:plugin/log": super::filter::sluice::plugin::log,
        },
    });
}

/// The `packed-transform` world.
pub mod packed_transform {
    wasmtime::component::bindgen!({
        world: "packed-transform",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::filter::sluice::plugin::types,
            "sluice:plugin/log": super::filter::sluice::plugin::log,
            "sluice:plugin/packed": super::packed_filter::sluice::plugin::packed,
        },
    });
}

/// The `packed-route` world.
pub mod packed_route {
    wasmtime::component::bindgen!({
        world: "packed-route",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::filter::sluice::plugin::types,
            "sluice:plugin/log": super::filter::sluice::plugin::log,
            "sluice:plugin/packed": super::packed_filter::sluice::plugin::packed,
        },
    });
}

pub use filter::sluice::plugin::log;
pub use filter::sluice::plugin::types::{Event, Failure, Output};
pub use packed_filter::sluice::plugin::packed;
