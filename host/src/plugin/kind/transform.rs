//! The `transform` kind: each event becomes zero or more outputs (`wit/plugin.wit`, worlds
//! `transform` and `packed-transform`).

super::worlds! {
    plain: Plain(plain::TransformPre<crate::plugin::HostState>, plain::Transform, "transform"),
    packed: Packed(packed::PackedTransformPre<crate::plugin::HostState>, packed::PackedTransform, "packed-transform"),
    call: call_transform,
    decision: crate::plugin::Decision::Outputs,
}
