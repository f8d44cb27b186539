//! When a fast-tier worker's JS heap is collected: between invocations, never inside one
//! (DESIGN §3.2, layer 7); and how far an edge instance's collections are spaced
//! ([`EDGE_HEADROOM`]).
//!
//! boa collects by itself once the bytes of its objects pass a threshold, and that pass walks
//! the whole heap (every context the worker holds, intrinsics included): inside an invocation
//! it would be charged to a sub-millisecond budget. So a worker collects on its own schedule
//! ([`CollectionPolicy`]) and keeps the engine's trigger out of reach ([`make_headroom`]); if
//! the engine collects anyway, the worker sees it ([`CollectorWatch`]) and collects sooner.

/// Collect between invocations once this many bytes were allocated since the last collection,
/// so that boa's own collector never starts inside an invocation and gets charged to a
/// function's sub-millisecond budget. boa offers no reading of its heap, so this is counted by
/// the counting allocator, which sees every allocation (the engine's and ours), and lowered per
/// worker whenever the engine is seen to have collected by itself anyway ([`CollectorWatch`]).
///
/// A collection costs a pass over the live heap (every context the worker holds) plus the
/// dropping of each dead object. Callgrind on the running proxy, rewrite row (two functions a
/// request): with 4 MiB and the engine's trigger left as it was, the engine's came first, so
/// the worker halved its limits down to a collection every ~130 invocations, ~48k instructions
/// a request in all; with [`make_headroom`] and this limit, ~27k (406k → 386k a request).
pub(crate) const GC_AFTER_BYTES: u64 = 16 << 20;
/// ... and at the latest after this many invocations.
const GC_AFTER_INVOCATIONS: u32 = 1000;

/// How far above a worker's live heap boa's own trigger is put ([`make_headroom`]): what the
/// worker lets pile up between its own collections ([`GC_AFTER_BYTES`] counts every allocation,
/// of which the engine's objects are only a part). Making it costs ~2.5 ms per worker thread
/// here; 48 MiB cost 40–100 ms.
pub(crate) const ENGINE_HEADROOM: usize = GC_AFTER_BYTES as usize;

/// The headroom an edge instance's thread gets ([`make_headroom_once`]). An instance
/// collects only when the engine's trigger says so (its budgets are seconds, so a collection
/// inside an invocation costs time, not a failure); this only makes the passes over the live
/// heap rarer. Each instance may hold this much garbage more: 4 MiB saves as much as 16 MiB did
/// (callgrind, edge no-op) at a quarter of the memory across many instances.
pub(crate) const EDGE_HEADROOM: usize = 4 << 20;

thread_local! {
    /// Collections this worker thread started itself.
    static FORCED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The largest headroom made on this thread by [`make_headroom_once`].
    static HEADROOM_MADE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Run the collector now, between invocations.
pub(crate) fn force_collect() {
    boa_engine::gc::force_collect();
    FORCED.with(|f| f.set(f.get() + 1));
}

/// Whether boa's collector ran since this watch was armed: a garbage object of our own is gone.
/// boa offers no way to read its allocation count, so this is how a worker learns that its
/// between-invocation collections came too late (the engine's trigger counts its live heap too,
/// which a worker cannot see).
struct CollectorWatch {
    sentinel: boa_engine::gc::WeakGc<u8>,
    forced_at: u64,
}

impl CollectorWatch {
    fn arm() -> Self {
        let sentinel = boa_engine::gc::Gc::new(0u8);
        CollectorWatch {
            sentinel: boa_engine::gc::WeakGc::new(&sentinel),
            forced_at: FORCED.with(std::cell::Cell::get),
        }
    }

    /// The worker collected (loading or discarding a context) since the watch was armed.
    fn forced_since(&self) -> bool {
        FORCED.with(std::cell::Cell::get) != self.forced_at
    }

    /// Something collected since the watch was armed.
    fn collected(&self) -> bool {
        self.sentinel.upgrade().is_none()
    }
}

/// When a worker collects between invocations, adapted to what the engine does by itself.
pub(crate) struct CollectionPolicy {
    after_bytes: u64,
    after_invocations: u32,
    /// Invocations since the last collection (the worker collects when idle with any).
    pub(crate) invocations: u32,
    allocated_at_gc: u64,
    watch: CollectorWatch,
}

impl CollectionPolicy {
    pub(crate) fn new() -> Self {
        CollectionPolicy {
            after_bytes: GC_AFTER_BYTES,
            after_invocations: GC_AFTER_INVOCATIONS,
            invocations: 0,
            allocated_at_gc: crate::alloc_meter::allocated(),
            watch: CollectorWatch::arm(),
        }
    }

    pub(crate) fn collect(&mut self) {
        force_collect();
        self.restart();
    }

    /// The worker has had nothing to do for a while: collect what the last invocations left,
    /// or, for a worker that started with no context and has one now, make the headroom
    /// ([`Self::make_headroom`]). A worker with no context (a configuration without fast
    /// functions) makes none: it would only add the ballast (16 MiB per worker) to the
    /// process's peak memory.
    pub(crate) fn when_idle(&mut self, has_contexts: bool) {
        let headroom = Self::has_headroom();
        if !headroom && !has_contexts {
            return;
        }
        if !headroom {
            self.make_headroom();
        } else if self.invocations > 0 {
            self.collect();
        }
    }

    /// Put the engine's trigger out of reach ([`make_headroom`]). A worker that starts with
    /// functions to warm does it first, before it loads them and before it is ready, so no
    /// request waits for it: over a near-empty heap the engine's passes while the ballast grows
    /// cost next to nothing, and it took ~2.5 ms here (once ~90 ms: the first touch of VM
    /// memory the host had never backed, which costs the same wherever it is paid). Made at
    /// the first idle moment after the contexts were loaded, as it was, each of those passes
    /// walked their heaps (4–12 ms, up to 125 ms), and a worker under load from its start was
    /// never idle: the engine collected inside its invocations at 1 MiB and the worker halved
    /// its own schedule for good (the load bench's rewrite: a collection every 250 invocations
    /// instead of 1,000). A worker that started without functions makes it at its first idle
    /// moment or after its first invocation, whichever comes first.
    ///
    /// The contexts loaded afterwards live inside the headroom: boa lifts its trigger to
    /// what is held over 70%, ~23 MiB for 16 MiB of ballast, so up to ~7 MiB of contexts fit
    /// beside the worker's own 16 MiB schedule ([`GC_AFTER_BYTES`]); past that the engine is
    /// seen collecting by itself and the worker collects sooner
    /// ([`CollectionPolicy::after_invocation`], counted in `verge_functions_engine_collections`).
    pub(crate) fn make_headroom(&mut self) {
        make_headroom_once(ENGINE_HEADROOM);
        self.restart();
    }

    /// Whether this thread's engine trigger is out of reach already (boa never lowers it, so
    /// the thread's record of it is the one to ask).
    fn has_headroom() -> bool {
        HEADROOM_MADE.with(std::cell::Cell::get) >= ENGINE_HEADROOM
    }

    /// Count from now, after a collection.
    fn restart(&mut self) {
        self.invocations = 0;
        self.allocated_at_gc = crate::alloc_meter::allocated();
        self.watch = CollectorWatch::arm();
    }

    /// After an invocation: make the headroom if the worker has none yet, else collect if it
    /// is time. If the engine collected by itself since the last time, its pause may have landed
    /// inside an invocation, so collect sooner from now on; `true` then, for the pool to count.
    pub(crate) fn after_invocation(&mut self, function: &str) -> bool {
        self.invocations += 1;
        if !Self::has_headroom() {
            let engine_collected = self.watch.collected() && !self.watch.forced_since();
            self.make_headroom();
            return engine_collected;
        }
        if self.watch.forced_since() {
            self.restart();
            return false;
        }
        if self.watch.collected() {
            self.after_bytes = (self.after_bytes / 2).max(64 * 1024);
            self.after_invocations = (self.after_invocations / 2).max(8);
            tracing::debug!(
                function,
                after_bytes = self.after_bytes,
                after_invocations = self.after_invocations,
                "the engine collected by itself between forced collections; collecting sooner"
            );
            self.collect();
            return true;
        }
        let allocated = crate::alloc_meter::allocated().saturating_sub(self.allocated_at_gc);
        if self.invocations >= self.after_invocations || allocated > self.after_bytes {
            self.collect();
        }
        false
    }
}

/// The size of the ballast's pieces.
const BALLAST_PIECE: usize = 16 * 1024;

/// One piece of ballast: bytes the collector holds but has nothing to trace in. A bare byte
/// array would be traced byte by byte at every collection (boa's `Trace` for arrays visits each
/// element): unoptimized, as tests build this crate, making 4 MiB of ballast took ~50 ms. Left
/// uninitialized: only their size counts, so nothing needs to write 16 MiB of zeros.
struct BallastPiece(
    #[expect(dead_code, reason = "its bytes are there to be counted, never read")]
    std::mem::MaybeUninit<[u8; BALLAST_PIECE]>,
);

impl boa_engine::gc::Finalize for BallastPiece {}

// SAFETY: the piece holds no `Gc` pointer, so there is nothing to mark.
#[expect(
    unsafe_code,
    reason = "boa's Trace is an unsafe trait; this one traces nothing"
)]
unsafe impl boa_engine::gc::Trace for BallastPiece {
    boa_engine::gc::empty_trace!();
}

/// Put boa's own collection trigger on this thread at least `bytes` above what the heap holds
/// now, so the engine does not start a collection inside an invocation before the worker's own
/// schedule collects between invocations.
///
/// boa 0.22 has no setting for it (its `GcConfig` is private, starting at 1 MiB): it collects
/// when the bytes of its objects pass the threshold, and raises the threshold to what is still
/// live over 70% when a collection leaves more than that. So the worker makes that happen once
/// ([`CollectionPolicy::make_headroom`]): it holds `bytes` of ballast objects while the engine
/// collects, which lifts the threshold above them, then drops them. boa never lowers the
/// threshold; a thread keeps it. Costs the ballast's memory for a moment (the allocator still
/// touches each piece, and the engine's passes), once per worker thread.
pub(crate) fn make_headroom(bytes: usize) {
    let started = std::time::Instant::now();
    let pieces = bytes.div_ceil(BALLAST_PIECE);
    let mut ballast = Vec::with_capacity(pieces);
    // Each allocation checks the threshold: past it, the engine collects (the ballast is
    // held, so it stays) and raises the threshold above what is held.
    for _ in 0..pieces {
        ballast.push(boa_engine::gc::Gc::new(BallastPiece(
            std::mem::MaybeUninit::uninit(),
        )));
    }
    drop(ballast);
    force_collect();
    tracing::debug!(
        headroom_mb = bytes >> 20,
        took_us = started.elapsed().as_micros(),
        "made the collector's headroom"
    );
}

/// [`make_headroom`], unless this thread made at least `bytes` already: boa never lowers its
/// trigger, so a context loaded again on the same thread (after an abort) needs none.
pub(crate) fn make_headroom_once(bytes: usize) {
    if HEADROOM_MADE.with(std::cell::Cell::get) >= bytes {
        return;
    }
    make_headroom(bytes);
    HEADROOM_MADE.with(|h| h.set(bytes));
}

#[cfg(test)]
mod tests;
