//! The `filter` kind: keep or drop each event (`wit/plugin.wit`, worlds
//! `filter` and `packed-filter`).

super::worlds! {
    plain: Plain(plain::FilterPre<crate::plugin::HostState>, plain::Filter, "filter"),
    packed: Packed(packed::PackedFilterPre<crate::plugin::HostState>, packed::PackedFilter, "packed-filter"),
    call: call_filter,
    decision: crate::plugin::Decision::Keep,
}
