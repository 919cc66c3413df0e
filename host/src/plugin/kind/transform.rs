//! The `transform` kind: each event becomes zero or more outputs (`wit/plugin.wit`, worlds
//! `transform` and `packed-transform`).

mod plain {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
        },
    });
}

mod packed {
    wasmtime::component::bindgen!({
        world: "packed-transform",
        path: "../wit",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::types,
            "sluice:plugin/log": crate::plugin::bindings::log,
            "sluice:plugin/packed": crate::plugin::bindings::packed,
        },
    });
}

super::worlds! {
    plain: Plain(plain::TransformPre<crate::plugin::HostState>, plain::Transform, "transform"),
    packed: Packed(packed::PackedTransformPre<crate::plugin::HostState>, packed::PackedTransform, "packed-transform"),
    call: call_transform,
    decision: crate::plugin::Decision::Outputs,
}
