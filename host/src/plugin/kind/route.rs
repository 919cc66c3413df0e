//! The `route` kind: name each event's destinations (`wit/plugin.wit`, worlds
//! `route` and `packed-route`).

super::worlds! {
    plain: Plain(plain::RoutePre<crate::plugin::HostState>, plain::Route, "route"),
    packed: Packed(packed::PackedRoutePre<crate::plugin::HostState>, packed::PackedRoute, "packed-route"),
    call: call_route,
    decision: crate::plugin::Decision::Routes,
}
