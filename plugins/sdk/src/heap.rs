//! The plugin's heap on wasm (the `allocator` feature): an arena for the
//! small allocations of batch calls, over [Talc](https://docs.rs/talc) for
//! the rest.
//!
//! (The tests run it over the system allocator instead of Talc.)
//!
//! A batch call makes many small allocations and keeps none of them: the
//! host writes each event's partition key, sequence number and shard ID
//! into fresh guest allocations, the plugin allocates what it parses and
//! returns, and all of it is freed once the host has read the call's
//! results. So after `init`, an allocation of up to [`SMALL`] bytes is
//! carved from one block: from a free list of its size class (multiples of
//! 16 bytes) if one was freed, otherwise by bumping a pointer. A free puts
//! it on its class's list and counts down; when the count reaches zero (the
//! call is over and everything it made is gone) the block starts over from
//! its beginning. Payloads and other large buffers go to Talc, which reuses
//! them across events as before, so the arena adds little memory.
//!
//! What does not fit in the block goes to Talc, as does everything `init`
//! builds (the plugin's state lives for the instance's life). If a plugin
//! keeps something small from a call (a cache), the count never reaches
//! zero and the block no longer starts over: it still serves the small
//! allocations from its free lists, and Talc the rest. After a call that
//! overflowed it, the block is replaced by one as large as that call asked
//! for, up to [`MAX_BLOCK`].

#![allow(
    unsafe_code,
    reason = "a global allocator hands out raw memory; each unsafe block says why it is sound"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// The first block, taken from Talc when `init` is done.
const FIRST_BLOCK: usize = 256 << 10;

/// The largest block.
const MAX_BLOCK: usize = 16 << 20;

/// The largest allocation the arena serves; larger ones are Talc's.
const SMALL: usize = 256;

/// The size classes' step, and the alignment of every arena allocation.
const STEP: usize = 16;

/// The number of size classes: 16, 32, .., [`SMALL`] bytes.
const CLASSES: usize = SMALL / STEP;

/// An allocator (Talc on wasm), with the batch arena in front.
pub(crate) struct Heap<A> {
    talc: A,
    arena: Cell<Arena>,
    /// Per size class, the last freed allocation (0: none); each holds the
    /// address of the one freed before it.
    free: [Cell<usize>; CLASSES],
}

// SAFETY: a `wasm32-wasip2` component has one thread (the SDK installs
// this allocator only without the `atomics` target feature), so the cells
// are never touched from two threads. The tests use it from one thread.
unsafe impl<A> Sync for Heap<A> {}

/// The arena's block and where it stands.
#[derive(Clone, Copy)]
struct Arena {
    /// The block: `start..end` (both 0 while there is none).
    start: usize,
    end: usize,
    /// Where the next bump allocation goes.
    next: usize,
    /// Allocations made in the block and not freed yet.
    live: usize,
    /// Whether batch calls have begun (`init` is done).
    on: bool,
    /// An allocation did not fit since the block last started over.
    overflowed: bool,
    /// Bytes asked of the arena since the block last started over.
    asked: usize,
}

/// The size class of an arena allocation of `size` bytes (1..=[`SMALL`]).
fn class(size: usize) -> usize {
    (size - 1) / STEP
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
            free: [const { Cell::new(0) }; CLASSES],
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

    /// Nothing in the block is live: it starts over (larger, if the last
    /// call overflowed it).
    fn start_over(&self, mut a: Arena) {
        a.next = a.start;
        for head in &self.free {
            head.set(0);
        }
        let size = a.asked.next_power_of_two().min(MAX_BLOCK);
        let grow = a.overflowed && size > a.end - a.start;
        a.asked = 0;
        a.overflowed = false;
        self.arena.set(a);
        if grow {
            self.new_block(size);
        }
    }
}

fn block_layout(size: usize) -> Layout {
    Layout::from_size_align(size, STEP).expect("a block's size is a small power of two")
}

// SAFETY: an arena allocation is handed out once until it is freed: it is
// either fresh memory below the block's end (the bump pointer only goes
// back when nothing in the block is live), or a freed allocation of the
// same size class taken off its free list; it is aligned to 16 (the block
// is, and every class is a multiple of 16), which covers the layouts it
// serves. Everything else is Talc's, a sound allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Heap<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut a = self.arena.get();
        let size = layout.size();
        if a.on && (1..=SMALL).contains(&size) && layout.align() <= STEP {
            let c = class(size);
            let head = self.free[c].get();
            if head != 0 {
                // SAFETY: `head` is a freed arena allocation of this class,
                // which `dealloc` made hold the next one's address.
                self.free[c].set(unsafe { (head as *const usize).read() });
                a.live += 1;
                self.arena.set(a);
                return head as *mut u8;
            }
            let bytes = (c + 1) * STEP;
            a.asked = a.asked.saturating_add(bytes);
            if a.end - a.next >= bytes {
                let at = a.next;
                a.next += bytes;
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
            return self.start_over(a);
        }
        self.arena.set(a);
        // The allocation holds at least its layout's class (a `realloc` in
        // place keeps the class or makes the layout smaller).
        let c = class(layout.size());
        // SAFETY: the allocation is ours again, at least `STEP` bytes and
        // aligned: it holds the class's list from now on.
        unsafe { (ptr as *mut usize).write(self.free[c].get()) };
        self.free[c].set(ptr as usize);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let a = self.arena.get();
        if !Self::in_block(&a, ptr) {
            // SAFETY: `ptr` is not the block's, so Talc allocated it.
            return unsafe { self.talc.realloc(ptr, layout, new_size) };
        }
        if (1..=(class(layout.size()) + 1) * STEP).contains(&new_size) {
            // It fits the room the allocation has.
            return ptr;
        }
        // SAFETY: `new_size` is non-zero and, as the caller promises, fits
        // `isize` once aligned.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both are valid for the smaller of the two sizes and
            // are distinct allocations; then the old one is freed with its
            // own layout.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
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
    /// its own byte: no two live blocks overlap and none is overwritten
    /// (freed ones are reused from the free lists); the arena starts over
    /// when all is freed, and grows after a call overflowed it.
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
        let mut live: Vec<Block> = Vec::new();
        let check = |live: &[Block], bytes_too: bool| {
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
        for _ in 0..60 {
            // A "call": allocations grow, shrink and die in any order,
            // then everything is freed.
            let ops = 50 + rng.below(400);
            for op in 0..ops {
                random_op(&heap, &mut rng, &mut live, (op % 251) as u8);
                check(&live, op % 16 == 0);
            }
            check(&live, true);
            for (p, l, _) in live.drain(..) {
                unsafe { heap.dealloc(p, l) };
            }
            let a = heap.arena.get();
            assert_eq!((a.live, a.next), (0, a.start), "the arena starts over");
        }
        unsafe { heap.dealloc(init, Layout::from_size_align(100, 8).unwrap()) };
    }

    /// A live block: where, its layout, and the byte it is filled with.
    type Block = (*mut u8, Layout, u8);

    /// One random allocation, free or reallocation (mostly of the top
    /// block, as a growing `Vec`), checking what it keeps.
    fn random_op(heap: &Heap<std::alloc::System>, rng: &mut Rng, live: &mut Vec<Block>, fill: u8) {
        match rng.below(4) {
            0 | 1 => {
                // Mostly small (the arena's), some large (Talc's).
                let most = if rng.below(4) == 0 { 3_000 } else { SMALL };
                let size = 1 + rng.below(most);
                let layout = Layout::from_size_align(size, 1 << rng.below(5)).unwrap();
                let p = unsafe { heap.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % layout.align(), 0);
                unsafe { p.write_bytes(fill, size) };
                live.push((p, layout, fill));
            }
            2 if !live.is_empty() => {
                let (p, l, _) = live.swap_remove(rng.below(live.len()));
                unsafe { heap.dealloc(p, l) };
            }
            3 if !live.is_empty() => {
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
    }

    /// A call that asks for more than the block holds: the rest is Talc's,
    /// and the block grows to what it asked for.
    #[test]
    fn a_call_past_the_block_goes_to_talc_and_the_block_grows() {
        let heap = Heap::over(std::alloc::System);
        heap.start_batches();
        let small = Layout::from_size_align(200, 8).unwrap();
        let many: Vec<*mut u8> = (0..4 * FIRST_BLOCK / 200)
            .map(|_| unsafe { heap.alloc(small) })
            .collect();
        let a = heap.arena.get();
        assert!(
            many.iter()
                .any(|&p| !Heap::<std::alloc::System>::in_block(&a, p))
        );
        for p in many {
            unsafe { heap.dealloc(p, small) };
        }
        let a = heap.arena.get();
        assert!(
            a.end - a.start > FIRST_BLOCK,
            "the block grew after overflowing"
        );
        assert_eq!((a.live, a.next), (0, a.start));
    }
}
