//! The `filter` kind: keep or drop each event (`wit/plugin.wit`, worlds
//! `filter` and `packed-filter`).

mod plain {
    wasmtime::component::bindgen!({
        world: "filter",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
        },
    });
}

mod packed {
    wasmtime::component::bindgen!({
        world: "packed-filter",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
            "sluice:plugin/packed": crate::plugin::bindings::packed,
        },
    });
}

super::worlds! {
    plain: Plain(plain::FilterPre<crate::plugin::HostState>, plain::Filter, "filter"),
    packed: Packed(packed::PackedFilterPre<crate::plugin::HostState>, packed::PackedFilter, "packed-filter"),
    call: call_filter,
    decision: crate::plugin::Decision::Keep,
}
