//! The `aggregate` kind in the SDK: the [`Aggregate`] trait (fold one event
//! into a typed, serde state per tumbling window; emit the window's outputs)
//! and [`export_aggregate!`](crate::export_aggregate), which exports it as
//! the `packed-aggregate` world (the state crosses as JSON text).

use serde::de::DeserializeOwned;

use crate::{Event, Failure, Output, Window};

/// A plugin that folds events into a state per tumbling window and shard,
/// and makes outputs of the state when the window closes (world
/// `aggregate`): counts, sums, top-N.
///
/// Between calls the state is JSON (serde), carried by Lambda from one
/// invocation of the window to the next; it starts as `State::default()`.
/// Keep it small: all of a pipeline's aggregate steps share Lambda's 1 MB
/// of window state, and a step whose state outgrows its share
/// (`limits.max_state_bytes`) fails the records of that call.
///
/// ```
/// use std::collections::BTreeMap;
/// use sluice_plugin::{Aggregate, Event, Failure, NoSettings, Output, Window};
///
/// struct CountByKey;
///
/// impl Aggregate for CountByKey {
///     type Settings = NoSettings;
///     type State = BTreeMap<String, u64>;
///     fn init(_: NoSettings) -> Result<Self, String> {
///         Ok(CountByKey)
///     }
///     fn fold(&self, _: &Window, counts: &mut Self::State, e: &Event) -> Result<(), Failure> {
///         *counts.entry(e.partition_key.clone()).or_default() += 1;
///         Ok(())
///     }
///     fn emit(&self, _: &Window, counts: Self::State) -> Result<Vec<Output>, String> {
///         Ok(vec![Output::json(&counts).map_err(|e| format!("{e:?}"))?])
///     }
/// }
/// ```
pub trait Aggregate: Sized + 'static {
    /// The plugin's settings: the step's `config` table, deserialized.
    type Settings: DeserializeOwned;
    /// One window's state.
    type State: serde::Serialize + DeserializeOwned + Default;
    /// Builds the plugin once per instance.
    fn init(settings: Self::Settings) -> Result<Self, String>;
    /// Folds one event into `state`. An `Err` fails the event: return it
    /// before changing `state`, so that the event leaves no trace.
    fn fold(&self, window: &Window, state: &mut Self::State, event: &Event) -> Result<(), Failure>;
    /// The window closed: its outputs, made of its final state.
    fn emit(&self, window: &Window, state: Self::State) -> Result<Vec<Output>, String>;
}

/// Exports an [`Aggregate`] type as the plugin's `aggregate` world.
#[macro_export]
macro_rules! export_aggregate {
    ($ty:ty) => {
        // Exported only when building the component: natively (tests,
        // benchmarks) a plugin is a plain Rust type.
        #[cfg(target_arch = "wasm32")]
        ::std::thread_local! {
            static __SLUICE_STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                const { ::core::cell::RefCell::new(None) };
        }
        #[cfg(target_arch = "wasm32")]
        struct __SluiceGuest;
        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::packed_aggregate::Guest for __SluiceGuest {
            fn init(settings: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__rt::aggregate_init::<$ty>(&__SLUICE_STATE, settings)
            }
            fn fold(
                window: $crate::Window,
                state: ::std::string::String,
                batch: $crate::__rt::PackedBatch,
            ) -> (::std::string::String, ::std::vec::Vec<::core::result::Result<(), $crate::Failure>>) {
                $crate::__rt::packed_fold::<$ty>(&__SLUICE_STATE, window, state, batch)
            }
            fn emit(
                window: $crate::Window,
                state: ::std::string::String,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Output>, ::std::string::String> {
                $crate::__rt::aggregate_emit::<$ty>(&__SLUICE_STATE, window, state)
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::packed_aggregate::__export_packed_aggregate_world!(__SluiceGuest with_types_in $crate::bindings::packed_aggregate);
    };
}
