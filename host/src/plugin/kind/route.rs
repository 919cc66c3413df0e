//! The `route` kind: name each event's destinations (`wit/plugin.wit`, worlds
//! `route` and `packed-route`).

mod plain {
    wasmtime::component::bindgen!({
        world: "route",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
        },
    });
}

mod packed {
    wasmtime::component::bindgen!({
        world: "packed-route",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
            "sluice:plugin/packed": crate::plugin::bindings::packed,
        },
    });
}

super::worlds! {
    plain: Plain(plain::RoutePre<crate::plugin::HostState>, plain::Route, "route"),
    packed: Packed(packed::PackedRoutePre<crate::plugin::HostState>, packed::PackedRoute, "packed-route"),
    call: call_route,
    decision: crate::plugin::Decision::Routes,
}
