//! The plugin's heap on wasm (the `allocator` feature): a bump arena for
//! what a batch call allocates, over [Talc](https://docs.rs/talc) for the
//! rest.
//!
//! (The tests run it over the system allocator instead of Talc.)
//!
//! A batch call allocates a lot and keeps none of it: the host writes each
//! event's strings and payload into fresh guest allocations, the plugin
//! allocates what it parses and returns, and all of it is freed when the
//! call's results have been read. So after `init`, allocations are carved
//! from one block by bumping a pointer, and a free only counts down; when the
//! count reaches zero (the call is over and everything it made is gone) the
//! block starts over from its beginning. The last allocation freed or grown
//! is undone or extended in place, so short-lived buffers are reused.
//!
//! Whatever does not fit in the block goes to Talc, as does everything
//! `init` builds (the plugin's state lives for the instance's life). If a
//! plugin keeps something from a call (a cache), the count never reaches
//! zero, the block fills up and the plugin runs on Talc alone, as fast as
//! before this arena. After a call that overflowed it, the block is
//! replaced by one as large as that call asked for, up to [`MAX_BLOCK`]
//! (more than a whole 6 MB batch and its outputs need).

#![allow(
    unsafe_code,
    reason = "a global allocator hands out raw memory; each unsafe block says why it is sound"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// The first block, taken from Talc when `init` is done.
const FIRST_BLOCK: usize = 1 << 20;

/// The largest block.
const MAX_BLOCK: usize = 16 << 20;

/// An allocator (Talc on wasm), with the batch arena in front.
pub(crate) struct Heap<A> {
    talc: A,
    arena: Cell<Arena>,
}

// SAFETY: a `wasm32-wasip2` component has one thread (the SDK installs
// this allocator only without the `atomics` target feature), so the `Cell`
// is never touched from two threads. The tests use it from one thread.
unsafe impl<A> Sync for Heap<A> {}

/// The arena's block and where it stands.
#[derive(Clone, Copy)]
struct Arena {
    /// The block: `start..end` (both 0 while there is none).
    start: usize,
    end: usize,
    /// Where the next allocation goes.
    next: usize,
    /// Allocations made in the block and not freed yet.
    live: usize,
    /// Whether batch calls have begun (`init` is done).
    on: bool,
    /// An allocation did not fit since the block last started over.
    overflowed: bool,
    /// Bytes asked for since the block last started over.
    asked: usize,
}

#[cfg(target_family = "wasm")]
impl Heap<talc::wasm::WasmDynamicTalc> {
    /// The plugin's heap, before any allocation.
    pub(crate) const fn new() -> Self {
        Heap::over(talc::wasm::new_wasm_dynamic_allocator())
    }
}

impl<A: GlobalAlloc> Heap<A> {
    /// The arena over the allocator `talc`.
    pub(crate) const fn over(talc: A) -> Self {
        Heap {
            talc,
            arena: Cell::new(Arena {
                start: 0,
                end: 0,
                next: 0,
                live: 0,
                on: false,
                overflowed: false,
                asked: 0,
            }),
        }
    }

    /// From now on batch calls run: take the first block.
    pub(crate) fn start_batches(&self) {
        let mut a = self.arena.get();
        if a.on {
            return;
        }
        a.on = true;
        self.arena.set(a);
        self.new_block(FIRST_BLOCK);
    }

    /// Replaces the (empty) block by one of `size` bytes from Talc, if Talc
    /// has room for it; otherwise the old block stays.
    fn new_block(&self, size: usize) {
        let mut a = self.arena.get();
        debug_assert_eq!(a.live, 0);
        a.overflowed = false;
        a.asked = 0;
        // SAFETY: the layout has a non-zero size.
        let block = unsafe { self.talc.alloc(block_layout(size)) };
        if !block.is_null() {
            if a.end > a.start {
                // SAFETY: the old block came from `self.talc.alloc` with this
                // layout, and nothing in it is live.
                unsafe {
                    self.talc
                        .dealloc(a.start as *mut u8, block_layout(a.end - a.start))
                };
            }
            a.start = block as usize;
            a.end = a.start + size;
            a.next = a.start;
        }
        self.arena.set(a);
    }

    /// Whether `ptr` lies in the block.
    fn in_block(a: &Arena, ptr: *mut u8) -> bool {
        (a.start..a.end).contains(&(ptr as usize))
    }
}

fn block_layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).expect("a block's size is a small power of two")
}

// SAFETY: memory from the block is handed out once (the bump pointer only
// moves back over memory that was freed: the top allocation, or all of it
// when nothing is live), aligned as asked and within the block; everything
// else is Talc's, which is a sound allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Heap<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut a = self.arena.get();
        if a.on && layout.size() != 0 {
            a.asked = a.asked.saturating_add(layout.size());
            let at = a.next.next_multiple_of(layout.align());
            if let Some(end) = at.checked_add(layout.size())
                && end <= a.end
            {
                a.next = end;
                a.live += 1;
                self.arena.set(a);
                return at as *mut u8;
            }
            a.overflowed = true;
            self.arena.set(a);
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { self.talc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut a = self.arena.get();
        if !Self::in_block(&a, ptr) {
            // SAFETY: `ptr` is not the block's, so Talc allocated it.
            return unsafe { self.talc.dealloc(ptr, layout) };
        }
        a.live -= 1;
        if a.live == 0 {
            a.next = a.start;
            self.arena.set(a);
            let size = a.asked.next_power_of_two().min(MAX_BLOCK);
            if a.overflowed && size > a.end - a.start {
                self.new_block(size);
            } else {
                a.asked = 0;
                a.overflowed = false;
                self.arena.set(a);
            }
            return;
        }
        if ptr as usize + layout.size() == a.next {
            // The top allocation: undo it.
            a.next = ptr as usize;
        }
        self.arena.set(a);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let mut a = self.arena.get();
        if !Self::in_block(&a, ptr) {
            // SAFETY: `ptr` is not the block's, so Talc allocated it.
            return unsafe { self.talc.realloc(ptr, layout, new_size) };
        }
        let at = ptr as usize;
        if at + layout.size() == a.next && new_size <= a.end - at {
            // The top allocation: grow or shrink it where it is.
            a.next = at + new_size;
            self.arena.set(a);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `new_size` is non-zero (it is larger than the old size) and,
        // as the caller promises, fits `isize` once aligned.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both are valid for `layout.size()` bytes and distinct
            // allocations; then the old one is freed with its own layout.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic random source (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Random allocations, frees and reallocations, each block filled with
    /// its own byte: no two live blocks overlap and none is overwritten;
    /// the arena starts over when all is freed, and grows after overflowing.
    #[test]
    fn blocks_never_overlap_and_keep_their_bytes() {
        let heap = Heap::over(std::alloc::System);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let init = unsafe { heap.alloc(Layout::from_size_align(100, 8).unwrap()) };
        heap.start_batches();
        assert!(!Heap::<std::alloc::System>::in_block(
            &heap.arena.get(),
            init
        ));
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let check = |live: &[(*mut u8, Layout, u8)], bytes_too: bool| {
            for &(p, l, fill) in live.iter().filter(|_| bytes_too) {
                let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
                assert!(bytes.iter().all(|&b| b == fill), "a block was overwritten");
            }
            let mut spans: Vec<_> = live
                .iter()
                .map(|&(p, l, _)| (p as usize, p as usize + l.size()))
                .collect();
            spans.sort();
            assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "blocks overlap");
        };
        for round in 0..60 {
            // A "call": allocations grow, shrink and die in any order,
            // then everything is freed.
            let ops = 50 + rng.below(400);
            for op in 0..ops {
                match rng.below(4) {
                    0 | 1 => {
                        let size = 1 + rng.below(if round % 7 == 6 { 60_000 } else { 3_000 });
                        let layout = Layout::from_size_align(size, 1 << rng.below(5)).unwrap();
                        let p = unsafe { heap.alloc(layout) };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % layout.align(), 0);
                        let fill = (op % 251) as u8;
                        unsafe { p.write_bytes(fill, size) };
                        live.push((p, layout, fill));
                    }
                    2 if !live.is_empty() => {
                        let (p, l, _) = live.swap_remove(rng.below(live.len()));
                        unsafe { heap.dealloc(p, l) };
                    }
                    3 if !live.is_empty() => {
                        // The top block more often than not, as a growing Vec.
                        let i = if rng.below(2) == 0 {
                            live.len() - 1
                        } else {
                            rng.below(live.len())
                        };
                        let (p, l, fill) = live[i];
                        let new_size = 1 + rng.below(2 * l.size() + 100);
                        let q = unsafe { heap.realloc(p, l, new_size) };
                        assert!(!q.is_null());
                        let kept = l.size().min(new_size);
                        let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
                        assert!(bytes.iter().all(|&b| b == fill), "realloc lost bytes");
                        unsafe { q.write_bytes(fill, new_size) };
                        live[i] = (
                            q,
                            Layout::from_size_align(new_size, l.align()).unwrap(),
                            fill,
                        );
                    }
                    _ => {}
                }
                check(&live, op % 16 == 0);
            }
            check(&live, true);
            for (p, l, _) in live.drain(..) {
                unsafe { heap.dealloc(p, l) };
            }
            let a = heap.arena.get();
            assert_eq!((a.live, a.next), (0, a.start), "the arena starts over");
        }
        let a = heap.arena.get();
        assert!(
            a.end - a.start > FIRST_BLOCK,
            "the block grew after overflowing"
        );
        unsafe { heap.dealloc(init, Layout::from_size_align(100, 8).unwrap()) };
    }
}
