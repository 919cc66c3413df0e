//! The Rust SDK for Sluice plugins.
//!
//! A Sluice plugin is a WebAssembly component that targets one world of the
//! `sluice:plugin` WIT package (`filter`, `transform`, `route` or
//! `aggregate`). The host
//! hands a plugin whole batches; this crate hides the batch loop so that a
//! plugin is a function of one [`Event`]. (It exports the kind's
//! `packed-*` world, which takes the batch's strings in one piece: one guest
//! allocation per event, its payload, instead of four.)
//!
//! ```
//! use sluice_plugin::{Event, Failure};
//!
//! fn keep(event: &Event) -> Result<bool, Failure> {
//!     Ok(!event.data.starts_with(br#"{"type":"heartbeat""#))
//! }
//!
//! sluice_plugin::export_filter!(fn keep);
//! ```
//!
//! A plugin with settings implements [`Filter`], [`Transform`] or [`Route`]
//! (or [`Aggregate`], which folds events into a state per tumbling window):
//! `init` receives the step's `config` table, already deserialized into the
//! plugin's own `Settings` type, and builds the plugin's state once per
//! instance (compile regexes there). Lookup tables the pipeline config
//! loads (`[tables.NAME]`) are read through [`tables`].
//!
//! Build with `cargo build --target wasm32-wasip2 --release`: the result is a
//! component, ready for a pipeline config.
//!
//! The default feature `allocator` gives the plugin, on wasm, a heap made
//! for batch calls: an arena for the many small allocations of a call,
//! which starts over once the call is done, in front of
//! [Talc](https://docs.rs/talc)
//! (both faster than the default `dlmalloc`); turn off the default features
//! to bring your own. Build with `-C target-feature=+simd128` (wasm's SIMD)
//! and [`json::Path`] scans JSON strings 16 bytes at a time.
//!
//! State kept between batches: an instance lives for many batches (until the
//! host recycles it after a trap), so anything `init` builds is reused; do not
//! rely on it surviving forever either.

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;

/// The bindings generated from `wit/`: the `filter` world's (for the shared
/// types and the `log` import) and the `packed-*` worlds the export macros
/// export.
///
/// Plugin authors rarely need these directly; they are public for the export
/// macros.
pub mod bindings {
    /// Bindings of the `filter` world (and the shared types and imports).
    #[allow(missing_docs, reason = "generated code")]
    pub mod filter {
        wit_bindgen::generate!({
            world: "filter",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_filter_world",
            default_bindings_module: "sluice_plugin::bindings::filter",
        });
    }

    /// Bindings of the `packed-filter` world (and the `packed` interface):
    /// what [`export_filter!`](crate::export_filter) exports.
    #[allow(missing_docs, reason = "generated code")]
    pub mod packed_filter {
        wit_bindgen::generate!({
            world: "packed-filter",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_packed_filter_world",
            default_bindings_module: "sluice_plugin::bindings::packed_filter",
            with: {
                "sluice:plugin/types@0.1.3": crate::bindings::filter::sluice::plugin::types,
                "sluice:plugin/log@0.1.3": crate::bindings::filter::sluice::plugin::log,
                "sluice:plugin/tables@0.1.3": crate::bindings::filter::sluice::plugin::tables,
            },
        });
    }

    /// Bindings of the `packed-transform` world.
    #[allow(missing_docs, reason = "generated code")]
    pub mod packed_transform {
        wit_bindgen::generate!({
            world: "packed-transform",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_packed_transform_world",
            default_bindings_module: "sluice_plugin::bindings::packed_transform",
            with: {
                "sluice:plugin/types@0.1.3": crate::bindings::filter::sluice::plugin::types,
                "sluice:plugin/log@0.1.3": crate::bindings::filter::sluice::plugin::log,
                "sluice:plugin/tables@0.1.3": crate::bindings::filter::sluice::plugin::tables,
                "sluice:plugin/packed@0.1.3": crate::bindings::packed_filter::sluice::plugin::packed,
            },
        });
    }

    /// Bindings of the `packed-route` world.
    #[allow(missing_docs, reason = "generated code")]
    pub mod packed_route {
        wit_bindgen::generate!({
            world: "packed-route",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_packed_route_world",
            default_bindings_module: "sluice_plugin::bindings::packed_route",
            with: {
                "sluice:plugin/types@0.1.3": crate::bindings::filter::sluice::plugin::types,
                "sluice:plugin/log@0.1.3": crate::bindings::filter::sluice::plugin::log,
                "sluice:plugin/tables@0.1.3": crate::bindings::filter::sluice::plugin::tables,
                "sluice:plugin/packed@0.1.3": crate::bindings::packed_filter::sluice::plugin::packed,
            },
        });
    }

    /// Bindings of the `packed-aggregate` world (and the `window` interface):
    /// what [`export_aggregate!`](crate::export_aggregate) exports.
    #[allow(
        missing_docs,
        clippy::too_many_arguments,
        reason = "generated code (the ABI passes the window and state flat)"
    )]
    pub mod packed_aggregate {
        wit_bindgen::generate!({
            world: "packed-aggregate",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_packed_aggregate_world",
            default_bindings_module: "sluice_plugin::bindings::packed_aggregate",
            with: {
                "sluice:plugin/types@0.1.3": crate::bindings::filter::sluice::plugin::types,
                "sluice:plugin/log@0.1.3": crate::bindings::filter::sluice::plugin::log,
                "sluice:plugin/tables@0.1.3": crate::bindings::filter::sluice::plugin::tables,
                "sluice:plugin/packed@0.1.3": crate::bindings::packed_filter::sluice::plugin::packed,
            },
        });
    }
}

pub use bindings::filter::sluice::plugin::types::{Event, Failure, Output};
pub use bindings::packed_aggregate::sluice::plugin::window::Window;
use bindings::packed_filter::sluice::plugin::packed;

mod aggregate;
pub mod json;
pub mod log;
mod scan;
pub mod tables;

pub use aggregate::Aggregate;

/// Settings for a plugin that takes none: accepts only an empty `config`.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// A plugin that keeps or drops events (world `filter`).
pub trait Filter: Sized + 'static {
    /// The plugin's settings: the step's `config` table, deserialized.
    type Settings: DeserializeOwned;
    /// Builds the plugin once per instance; an `Err` fails the pipeline start
    /// with the message.
    fn init(settings: Self::Settings) -> Result<Self, String>;
    /// `Ok(true)` keeps the event, `Ok(false)` drops it.
    fn filter(&self, event: &Event) -> Result<bool, Failure>;
}

/// A plugin that turns each event into zero or more outputs (world `transform`).
pub trait Transform: Sized + 'static {
    /// The plugin's settings: the step's `config` table, deserialized.
    type Settings: DeserializeOwned;
    /// Builds the plugin once per instance.
    fn init(settings: Self::Settings) -> Result<Self, String>;
    /// Returns the event's outputs: none drops it, several split it.
    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure>;
}

/// A plugin that chooses each event's destinations (world `route`).
pub trait Route: Sized + 'static {
    /// The plugin's settings: the step's `config` table, deserialized.
    type Settings: DeserializeOwned;
    /// Builds the plugin once per instance.
    fn init(settings: Self::Settings) -> Result<Self, String>;
    /// Names the destinations; an empty list means the pipeline's default.
    fn route(&self, event: &Event) -> Result<Vec<String>, Failure>;
}

impl Event {
    /// An event with this payload, no attributes and placeholder lineage
    /// (partition key `k`, sequence number `1`, shard
    /// `shardId-000000000000`, arrival 0): for a plugin's unit tests.
    ///
    /// ```
    /// let event = sluice_plugin::Event::from_data(br#"{"type":"click"}"#);
    /// assert_eq!(event.text().unwrap(), r#"{"type":"click"}"#);
    /// ```
    pub fn from_data(data: impl Into<Vec<u8>>) -> Event {
        Event {
            partition_key: "k".into(),
            sequence_number: "1".into(),
            sub_sequence_number: None,
            shard_id: "shardId-000000000000".into(),
            arrival_ms: 0,
            data: data.into(),
            attributes: Vec::new(),
        }
    }

    /// Parses the payload as JSON into `T`; a parse error becomes
    /// [`Failure::Invalid`] naming what was expected.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.data)
            .map_err(|e| Failure::Invalid(format!("payload is not the expected JSON: {e}")))
    }

    /// The payload as UTF-8 text; invalid UTF-8 becomes [`Failure::Invalid`].
    pub fn text(&self) -> Result<&str, Failure> {
        std::str::from_utf8(&self.data)
            .map_err(|e| Failure::Invalid(format!("payload is not UTF-8: {e}")))
    }

    /// The value of attribute `key`, if an earlier step set it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An output with this event's partition key and attributes and a new payload.
    pub fn output(&self, data: Vec<u8>) -> Output {
        Output {
            data,
            partition_key: None,
            attributes: self.attributes.clone(),
        }
    }

    /// Turns the event into an output that carries it on unchanged.
    pub fn into_output(self) -> Output {
        Output {
            data: self.data,
            partition_key: None,
            attributes: self.attributes,
        }
    }
}

impl Output {
    /// An output whose payload is `value` serialized as JSON.
    pub fn json<T: serde::Serialize>(value: &T) -> Result<Output, Failure> {
        let data = serde_json::to_vec(value)
            .map_err(|e| Failure::Invalid(format!("cannot serialize output: {e}")))?;
        Ok(Output {
            data,
            partition_key: None,
            attributes: Vec::new(),
        })
    }

    /// Sets (or replaces) attribute `key`.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Output {
        let key = key.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
        self
    }
}

/// Machinery behind the export macros; not a stable API.
#[doc(hidden)]
pub mod __rt {
    use super::*;

    /// Where a plugin instance keeps the state `init` built.
    pub type State<T> = LocalKey<RefCell<Option<T>>>;

    /// The batch of the `packed-*` worlds.
    pub type PackedBatch = packed::Batch;

    fn parse_settings<S: DeserializeOwned>(settings: &str) -> Result<S, String> {
        serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))
    }

    fn not_initialised<R>(batch_len: usize) -> Vec<Result<R, Failure>> {
        (0..batch_len)
            .map(|_| Err(Failure::Retry("plugin was called before `init`".into())))
            .collect()
    }

    /// Builds the plugin from its settings with `init` (its trait's) and
    /// keeps it in `state`: the body of every world's `init`.
    fn install<T, S: DeserializeOwned>(
        state: &'static State<T>,
        settings: &str,
        init: fn(S) -> Result<T, String>,
    ) -> Result<(), String> {
        let plugin = init(parse_settings(settings)?)?;
        state.with(|s| *s.borrow_mut() = Some(plugin));
        start_batches();
        Ok(())
    }

    /// `batch` handed to the plugin in `state` by `run`, or every event
    /// failed as `retry` if `init` has not built it.
    fn with_plugin<T, R>(
        state: &'static State<T>,
        batch: packed::Batch,
        run: impl FnOnce(&T, packed::Batch) -> Vec<Result<R, Failure>>,
    ) -> Vec<Result<R, Failure>> {
        state.with(|s| match s.borrow().as_ref() {
            Some(p) => run(p, batch),
            None => not_initialised(batch.events.len()),
        })
    }

    /// `init` of the `filter` world.
    pub fn filter_init<T: Filter>(
        state: &'static State<T>,
        settings: String,
    ) -> Result<(), String> {
        install(state, &settings, T::init)
    }

    /// `init` of the `transform` world.
    pub fn transform_init<T: Transform>(
        state: &'static State<T>,
        settings: String,
    ) -> Result<(), String> {
        install(state, &settings, T::init)
    }

    /// `init` of the `route` world.
    pub fn route_init<T: Route>(state: &'static State<T>, settings: String) -> Result<(), String> {
        install(state, &settings, T::init)
    }

    /// `filter` of the `packed-filter` world: the batch loop, over one
    /// [`Event`] refilled for each event.
    pub fn packed_filter<T: Filter>(
        state: &'static State<T>,
        batch: packed::Batch,
    ) -> Vec<Result<bool, Failure>> {
        with_plugin(state, batch, |p, batch| each_reused(batch, |e| p.filter(e)))
    }

    /// `transform` of the `packed-transform` world: the batch loop, each
    /// event unpacked into its own [`Event`] (the plugin takes it by value).
    pub fn packed_transform<T: Transform>(
        state: &'static State<T>,
        batch: packed::Batch,
    ) -> Vec<Result<Vec<Output>, Failure>> {
        with_plugin(state, batch, |p, batch| {
            unpacked(batch, |e| {
                let mut event = blank_event();
                fill(e, &mut event)?;
                p.transform(event)
            })
        })
    }

    /// `route` of the `packed-route` world: the batch loop, over one
    /// [`Event`] refilled for each event.
    pub fn packed_route<T: Route>(
        state: &'static State<T>,
        batch: packed::Batch,
    ) -> Vec<Result<Vec<String>, Failure>> {
        with_plugin(state, batch, |p, batch| each_reused(batch, |e| p.route(e)))
    }

    /// `init` of the `aggregate` world.
    pub fn aggregate_init<T: Aggregate>(
        state: &'static State<T>,
        settings: String,
    ) -> Result<(), String> {
        install(state, &settings, T::init)
    }

    /// `fold` of the `packed-aggregate` world: the window's state read from
    /// its JSON (`""`: the default), every event folded in, the state
    /// written back. A state that does not read fails every event as
    /// `retry`, and is handed back as it came.
    pub fn packed_fold<T: Aggregate>(
        plugin: &'static State<T>,
        window: Window,
        state: String,
        batch: packed::Batch,
    ) -> (String, Vec<Result<(), Failure>>) {
        let n = batch.events.len();
        let mut folded: T::State = if state.is_empty() {
            T::State::default()
        } else {
            match serde_json::from_str(&state) {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("the window's state does not read: {e}");
                    return (
                        state,
                        (0..n).map(|_| Err(Failure::Retry(why.clone()))).collect(),
                    );
                }
            }
        };
        let results = plugin.with(|p| match p.borrow().as_ref() {
            Some(p) => each_reused(batch, |e| p.fold(&window, &mut folded, e)),
            None => not_initialised(n),
        });
        match serde_json::to_string(&folded) {
            Ok(text) => (text, results),
            Err(e) => {
                let why = format!("the window's state does not write as JSON: {e}");
                (
                    state,
                    (0..n).map(|_| Err(Failure::Retry(why.clone()))).collect(),
                )
            }
        }
    }

    /// `emit` of the `packed-aggregate` world.
    pub fn aggregate_emit<T: Aggregate>(
        plugin: &'static State<T>,
        window: Window,
        state: String,
    ) -> Result<Vec<Output>, String> {
        let folded: T::State = if state.is_empty() {
            T::State::default()
        } else {
            serde_json::from_str(&state)
                .map_err(|e| format!("the window's state does not read: {e}"))?
        };
        plugin.with(|p| match p.borrow().as_ref() {
            Some(p) => p.emit(&window, folded),
            None => Err("plugin was called before `init`".into()),
        })
    }

    /// `each` of every event of `batch`, in order, as one [`Event`]
    /// refilled for each (its strings keep their allocations; each payload
    /// moves in): the loop of the worlds that borrow the event.
    fn each_reused<R>(
        batch: packed::Batch,
        mut each: impl FnMut(&Event) -> Result<R, Failure>,
    ) -> Vec<Result<R, Failure>> {
        let mut event = blank_event();
        unpacked(batch, |e| {
            fill(e, &mut event)?;
            each(&event)
        })
    }

    /// `each` of every event of `batch`, in order, with the batch's text
    /// and attributes at hand.
    fn unpacked<R>(
        batch: packed::Batch,
        mut each: impl FnMut(Unpacked<'_>) -> Result<R, Failure>,
    ) -> Vec<Result<R, Failure>> {
        let packed::Batch {
            events,
            attributes,
            text,
        } = batch;
        events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                each(Unpacked {
                    index,
                    event,
                    attributes: &attributes,
                    text: &text,
                })
            })
            .collect()
    }
}

/// An event with nothing in it yet, for [`fill`].
fn blank_event() -> Event {
    Event {
        partition_key: String::new(),
        sequence_number: String::new(),
        sub_sequence_number: None,
        shard_id: String::new(),
        arrival_ms: 0,
        data: Vec::new(),
        attributes: Vec::new(),
    }
}

/// One event of a `packed.batch`, with the batch's text and attributes.
struct Unpacked<'a> {
    index: usize,
    event: packed::Event,
    attributes: &'a [packed::Attribute],
    text: &'a str,
}

/// The text at `span`, or `None` if it lies outside `text` or does not
/// start and end on character boundaries (which the host never sends).
fn text_at(text: &str, span: packed::Span) -> Option<&str> {
    let start = span.start as usize;
    text.get(start..start.checked_add(span.len as usize)?)
}

/// Sets `slot` to the text at `span`, keeping its allocation.
fn set(slot: &mut String, text: &str, span: packed::Span) -> Option<()> {
    slot.clear();
    slot.push_str(text_at(text, span)?);
    Some(())
}

/// Makes `event` the unpacked event: its payload moves in, its strings are
/// copied into `event`'s own. A span outside the batch (a host that broke
/// the contract) fails the event as [`Failure::Retry`].
fn fill(unpacked: Unpacked<'_>, event: &mut Event) -> Result<(), Failure> {
    let Unpacked {
        index,
        event: e,
        attributes,
        text,
    } = unpacked;
    let broken = || {
        Failure::Retry(format!(
            "the host sent event {index} of a packed batch with a span out of its bounds"
        ))
    };
    set(&mut event.partition_key, text, e.partition_key).ok_or_else(broken)?;
    set(&mut event.sequence_number, text, e.sequence_number).ok_or_else(broken)?;
    set(&mut event.shard_id, text, e.shard_id).ok_or_else(broken)?;
    event.sub_sequence_number = e.sub_sequence_number;
    event.arrival_ms = e.arrival_ms;
    event.data = e.data;
    event.attributes.clear();
    let start = e.attributes.start as usize;
    let own = start
        .checked_add(e.attributes.len as usize)
        .and_then(|end| attributes.get(start..end))
        .ok_or_else(broken)?;
    for a in own {
        let key = text_at(text, a.key).ok_or_else(broken)?;
        let value = text_at(text, a.value).ok_or_else(broken)?;
        event.attributes.push((key.to_owned(), value.to_owned()));
    }
    Ok(())
}

/// Exports a [`Filter`] type, or a plain function `fn(&Event) -> Result<bool, Failure>`
/// written as `export_filter!(fn keep)`, as the plugin's `filter` world.
#[macro_export]
macro_rules! export_filter {
    (fn $f:path) => {
        $crate::__export_world!(fn $f => filter, Filter, filter_init, packed_filter, __export_packed_filter_world, (&$crate::Event) -> bool);
    };
    ($ty:ty) => {
        $crate::__export_world!($ty => filter, Filter, filter_init, packed_filter, __export_packed_filter_world, (&$crate::Event) -> bool);
    };
}

/// Exports a [`Transform`] type, or a plain function
/// `fn(Event) -> Result<Vec<Output>, Failure>` written as `export_transform!(fn f)`.
#[macro_export]
macro_rules! export_transform {
    (fn $f:path) => {
        $crate::__export_world!(fn $f => transform, Transform, transform_init, packed_transform, __export_packed_transform_world, ($crate::Event) -> ::std::vec::Vec<$crate::Output>);
    };
    ($ty:ty) => {
        $crate::__export_world!($ty => transform, Transform, transform_init, packed_transform, __export_packed_transform_world, ($crate::Event) -> ::std::vec::Vec<$crate::Output>);
    };
}

/// Exports a [`Route`] type, or a plain function
/// `fn(&Event) -> Result<Vec<String>, Failure>` written as `export_route!(fn f)`.
#[macro_export]
macro_rules! export_route {
    (fn $f:path) => {
        $crate::__export_world!(fn $f => route, Route, route_init, packed_route, __export_packed_route_world, (&$crate::Event) -> ::std::vec::Vec<::std::string::String>);
    };
    ($ty:ty) => {
        $crate::__export_world!($ty => route, Route, route_init, packed_route, __export_packed_route_world, (&$crate::Event) -> ::std::vec::Vec<::std::string::String>);
    };
}

/// The one body of [`export_filter!`], [`export_transform!`] and
/// [`export_route!`]: `world` is the exported function's (and the trait
/// method's) name, `Trait` the plugin trait, `init` the runtime's init,
/// `packed` the bindings module of the world exported (the kind's
/// `packed-*` world) and the runtime's batch loop for it, `export`
/// wit-bindgen's export macro, `(In) -> Out` the trait method's shape.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    // A plain function: wrap it in a plugin type without settings.
    (fn $f:path => $world:ident, $trait:ident, $init:ident, $packed:ident, $export:ident, ($input:ty) -> $output:ty) => {
        struct __SluiceFnPlugin;
        impl $crate::$trait for __SluiceFnPlugin {
            type Settings = $crate::NoSettings;
            fn init(_: $crate::NoSettings) -> ::core::result::Result<Self, ::std::string::String> {
                Ok(__SluiceFnPlugin)
            }
            fn $world(&self, event: $input) -> ::core::result::Result<$output, $crate::Failure> {
                $f(event)
            }
        }
        $crate::__export_world!(__SluiceFnPlugin => $world, $trait, $init, $packed, $export, ($input) -> $output);
    };
    ($ty:ty => $world:ident, $trait:ident, $init:ident, $packed:ident, $export:ident, ($input:ty) -> $output:ty) => {
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
        impl $crate::bindings::$packed::Guest for __SluiceGuest {
            fn init(settings: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__rt::$init::<$ty>(&__SLUICE_STATE, settings)
            }
            fn $world(
                batch: $crate::__rt::PackedBatch,
            ) -> ::std::vec::Vec<::core::result::Result<$output, $crate::Failure>> {
                $crate::__rt::$packed::<$ty>(&__SLUICE_STATE, batch)
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::$packed::$export!(__SluiceGuest with_types_in $crate::bindings::$packed);
    };
}

/// The plugin's heap on wasm: an arena for the small allocations of batch
/// calls over [Talc](https://docs.rs/talc), instead of the `dlmalloc` of
/// wasi-libc that Rust uses by default (see `heap.rs`).
///
/// Every event the host hands a plugin arrives in its own guest allocation
/// (its payload; the batch's strings and lists take three more per call),
/// the SDK copies its strings into the `Event` it hands the plugin, and most plugins
/// allocate again for what they parse and return; all of it is freed when
/// the call ends. The arena serves the small ones from free lists or by
/// bumping a pointer (BENCHMARKS.md, issue 19). The default feature `allocator` installs it; a plugin that
/// wants another global allocator turns off the SDK's default features.
#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: heap::Heap<talc::wasm::WasmDynamicTalc> = heap::Heap::new();

#[cfg(any(
    test,
    all(
        feature = "allocator",
        target_family = "wasm",
        not(target_feature = "atomics")
    )
))]
mod heap;

/// `init` is done: what is allocated from now on belongs to batch calls.
fn start_batches() {
    #[cfg(all(
        feature = "allocator",
        target_family = "wasm",
        not(target_feature = "atomics")
    ))]
    ALLOCATOR.start_batches();
}

#[cfg(test)]
mod tests {
    use super::packed::{Attribute, Batch, Event as PackedEvent, Span};
    use super::*;

    /// A route that names each event's fields, so the test sees what the
    /// batch loop handed it.
    struct Echo;

    impl Route for Echo {
        type Settings = NoSettings;
        fn init(_: NoSettings) -> Result<Self, String> {
            Ok(Echo)
        }
        fn route(&self, e: &Event) -> Result<Vec<String>, Failure> {
            let mut names = vec![
                e.partition_key.clone(),
                e.sequence_number.clone(),
                format!("{:?}", e.sub_sequence_number),
                e.shard_id.clone(),
                e.arrival_ms.to_string(),
                String::from_utf8(e.data.clone()).unwrap(),
            ];
            names.extend(e.attributes.iter().map(|(k, v)| format!("{k}={v}")));
            Ok(names)
        }
    }

    std::thread_local! {
        static STATE: RefCell<Option<Echo>> = const { RefCell::new(None) };
    }

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    #[test]
    fn the_batch_loop_unpacks_every_field_and_fails_events_out_of_bounds() {
        __rt::route_init(&STATE, "{}".into()).unwrap();
        // text: "shard-1" 0..7, "pk" 7..9, "42" 9..11, "k" 11..12, "vé" 12..15
        let text = "shard-1pk42kvé".to_owned();
        let event = |data: &str, attributes: Span, key: Span| PackedEvent {
            partition_key: key,
            sequence_number: span(9, 2),
            sub_sequence_number: Some(3),
            shard_id: span(0, 7),
            arrival_ms: 17,
            data: data.as_bytes().to_vec(),
            attributes,
        };
        let batch = Batch {
            events: vec![
                event("one", span(0, 1), span(7, 2)),
                event("two", span(1, 0), span(7, 2)),
                // Out of the text, across a character, out of the attributes.
                event("three", span(0, 0), span(12, 9)),
                event("four", span(0, 0), span(12, 2)),
                event("five", span(1, 1), span(7, 2)),
            ],
            attributes: vec![Attribute {
                key: span(11, 1),
                value: span(12, 3),
            }],
            text,
        };
        let results = __rt::packed_route(&STATE, batch);
        let names = |r: &Result<Vec<String>, Failure>| match r {
            Ok(names) => names.join(" "),
            Err(Failure::Retry(why)) => format!("retry: {why}"),
            Err(Failure::Invalid(why)) => format!("invalid: {why}"),
        };
        let got: Vec<String> = results.iter().map(names).collect();
        let bounds = |i: usize| {
            format!(
                "retry: the host sent event {i} of a packed batch with a span out of its bounds"
            )
        };
        assert_eq!(
            got,
            [
                "pk 42 Some(3) shard-1 17 one k=vé".to_owned(),
                "pk 42 Some(3) shard-1 17 two".to_owned(),
                bounds(2),
                bounds(3),
                bounds(4),
            ]
        );
    }
}
