//! One function's invocation queue: the invocations waiting for an instance, the instances
//! waiting for invocations, and the rule for whom to wake.
//!
//! An instance that finishes an invocation takes the next queued one without sleeping, so
//! under load one wake-up serves many invocations — before, every invocation was handed to an
//! idle instance and woke its thread, which on a busy core cost two context switches per
//! request. Whom to wake when an invocation is queued:
//! - if no instance is already on its way to the queue, the most recently idle one (its caches
//!   are warm); an instance that wakes and takes an invocation does the same for the rest, so
//!   a burst fans out one wake at a time instead of waking every idle instance at once;
//! - a new instance is started at once only when the function has none; otherwise only for an
//!   invocation still queued a moment later ([`START_DELAY`], the caller's [`Queue::nudge`]).
//!   A busy instance is usually about to finish, and a cold start (loading the code) costs far
//!   more than that moment; but an instance held up by a slow `await` must not hold up the
//!   invocations queued behind it, so they get their own after the delay. An instance that has
//!   answered and is on its way back ([`Queue::finishing`]) counts as coming for a task: after
//!   its first answer it makes its collector headroom, which can outlast the delay, and a
//!   second cold start then cost ten times what waiting for it does (seen for 3 of 20 pools
//!   called twice in a row). Only the caller's last resort, at the end of its wait
//!   ([`Queue::serve_or_take_back`]), does not count on it.
//!
//! The concurrency limit is the instance count: never more than `limit` instances serve, each
//! running one invocation at a time. Invocations beyond that wait here, for at most the
//! caller's bound: at its end one still queued gets an instance if the limit allows, and is
//! otherwise taken back and refused ([`Queue::serve_or_take_back`]).
//!
//! An instance whose caller gave up on it at the timeout, still running (CPU after an `await`
//! that only the loop backstop stops, tens of timeouts later), hands its place over at once
//! ([`Queue::hand_over`]), as Lambda frees a timed-out environment's concurrency: the function
//! keeps its capacity while the old thread winds down at idle priority. At most `limit`
//! instances may be retiring that way at once; past that, a timed-out instance keeps counting
//! against the limit until its thread ends, so runaways never pile up more than twice the
//! instance count in threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::Duration;

/// How long a queued invocation waits for a busy instance to come free before a new instance
/// is started for it.
pub const START_DELAY: Duration = Duration::from_millis(1);

/// An idle instance's doorbell.
#[derive(Debug)]
pub struct Waiter {
    thread: Thread,
    rung: AtomicBool,
}

impl Waiter {
    /// The doorbell of the calling thread.
    pub fn current() -> Arc<Waiter> {
        Arc::new(Waiter {
            thread: std::thread::current(),
            rung: AtomicBool::new(false),
        })
    }

    fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Sleep until rung (park can return early; the flag says whether it was us).
    fn wait(&self) {
        while !self.rung.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}

/// How an instance comes to the queue ([`Queue::next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A new instance's first look (it was counted as on its way when its start was asked for).
    Started,
    /// Back on thread `tid`, from answering (if it said so with [`Queue::finishing`], it no
    /// longer counts as finishing) or from a task it skipped.
    Back(i32),
}

/// Why the queue is asked for help: which tasks still need an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// A task was queued or taken: wake an idle instance if none is on its way (start one only
    /// for a function that has none).
    Queued,
    /// A task waited [`START_DELAY`]: help for the tasks that neither an instance on its way
    /// nor one finishing its answer will take.
    Waited,
    /// A task's wait ended, or a place came free: help for the tasks no instance on its way
    /// will take.
    Freed,
}

/// What the queue's state asks for after a change, done once its lock is released.
#[must_use]
pub enum Help {
    /// Nothing now: an instance is on its way, or the busy ones take the work when they finish
    /// (or the caller's nudge starts another, within the limit).
    None,
    /// Ring this idle instance.
    Wake(Arc<Waiter>),
    /// Start a new instance (counted as live and on its way already).
    Start,
}

impl Help {
    /// Ring the doorbell now; a start is left to the caller (it knows how).
    pub fn wake_or_start(self) -> bool {
        match self {
            Help::None => false,
            Help::Wake(w) => {
                w.ring();
                false
            }
            Help::Start => true,
        }
    }
}

/// A queue's state, under its lock.
#[derive(Debug)]
pub struct State<T> {
    tasks: VecDeque<T>,
    /// Idle instances; the last one went idle most recently.
    idle: Vec<Arc<Waiter>>,
    /// Instance threads started and not yet ended, less those that handed their place over.
    live: usize,
    /// Thread ids of the instances that look at the queue and still count in `live`.
    threads: Vec<i32>,
    /// Thread ids of timed-out instances that handed their place over and have not ended yet.
    retiring: Vec<i32>,
    /// Instances rung or started that have not yet looked at the queue.
    on_the_way: usize,
    /// Thread ids of instances that answered and are on their way back ([`Queue::finishing`]).
    finishing: Vec<i32>,
    /// The pool is gone: instances end instead of waiting.
    closed: bool,
}

/// One function's queue.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
    /// The most instances the function may have.
    limit: usize,
}

/// What an instance gets when it asks for work.
pub enum Next<T> {
    /// An invocation, and the help the queue asks for now that it was taken.
    Task(T, Help),
    /// The pool is gone: end the thread.
    Closed,
}

impl<T> Queue<T> {
    /// An empty queue for a function of at most `limit` instances.
    pub fn new(limit: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                idle: Vec::new(),
                live: 0,
                threads: Vec::new(),
                retiring: Vec::new(),
                on_the_way: 0,
                finishing: Vec::new(),
                closed: false,
            }),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves plain counters and a list behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `task`; returns the help to give.
    pub fn push(&self, task: T) -> Help {
        let mut s = self.lock();
        s.tasks.push_back(task);
        self.help(&mut s, Why::Queued)
    }

    /// Take back the task `is` picks if it is still queued and none of the instances on their
    /// way (started or woken, each taking one task, oldest first) will take it: no instance is
    /// free for it. `None` when it was taken or is about to be.
    pub fn take_back_unserved(&self, is: impl Fn(&T) -> bool) -> Option<T> {
        let mut s = self.lock();
        let at = s.tasks.iter().position(is)?;
        if at < s.on_the_way {
            return None;
        }
        s.tasks.remove(at)
    }

    fn help(&self, s: &mut State<T>, why: Why) -> Help {
        let wanted = match why {
            Why::Queued => !s.tasks.is_empty() && s.on_the_way == 0,
            Why::Waited => s.tasks.len() > s.on_the_way + s.finishing.len(),
            Why::Freed => s.tasks.len() > s.on_the_way,
        };
        if !wanted || s.closed {
            return Help::None;
        }
        if let Some(w) = s.idle.pop() {
            s.on_the_way += 1;
            return Help::Wake(w);
        }
        if s.live < self.limit && (why != Why::Queued || s.live == 0) {
            s.live += 1;
            s.on_the_way += 1;
            return Help::Start;
        }
        Help::None
    }

    /// A caller's task waited [`START_DELAY`] untaken or unanswered: if more tasks are queued
    /// than instances are on their way or finishing an answer, wake an idle instance or start a
    /// new one (within the limit).
    ///
    /// This does not ask whether the caller's own task is still queued: instances take tasks
    /// oldest first while callers' timers fire in any order, so the instance a later task's
    /// nudge started may have taken this caller's task — and then this nudge is the one left
    /// to get that later task its instance (without it, the task waited out the instance wait
    /// and was refused, seen once in a burst of 32).
    pub fn nudge(&self) -> Help {
        let mut s = self.lock();
        self.help(&mut s, Why::Waited)
    }

    /// The caller's task `is` picks was not taken within its wait: wake or start instances for
    /// it while the limit allows, or take it back when every instance the limit allows is busy.
    /// Returns the help to give either way (instances woken or started for the tasks ahead of
    /// it stay useful) and the task if it was taken back.
    pub fn serve_or_take_back(&self, is: impl Fn(&T) -> bool) -> (Vec<Help>, Option<T>) {
        let mut s = self.lock();
        let mut helps = Vec::new();
        let Some(at) = s.tasks.iter().position(is) else {
            return (helps, None);
        };
        while at >= s.on_the_way {
            match self.help(&mut s, Why::Freed) {
                Help::None => return (helps, s.tasks.remove(at)),
                help => helps.push(help),
            }
        }
        (helps, None)
    }

    /// The instance on thread `tid` answered and will come back for work ([`Queue::next`] with
    /// [`Arrival::Back`]) once it has tidied up: until then a task's nudge counts on it.
    pub fn finishing(&self, tid: i32) {
        self.lock().finishing.push(tid);
    }

    /// The next task for the calling instance, sleeping as idle until there is one. `me` is the
    /// calling thread's doorbell; `arrival` says how it comes.
    pub fn next(&self, me: &Arc<Waiter>, arrival: Arrival) -> Next<T> {
        let mut s = self.lock();
        match arrival {
            Arrival::Started => s.on_the_way = s.on_the_way.saturating_sub(1),
            Arrival::Back(tid) => s.finishing.retain(|&t| t != tid),
        }
        loop {
            if s.closed {
                return Next::Closed;
            }
            if let Some(task) = s.tasks.pop_front() {
                let help = self.help(&mut s, Why::Queued);
                return Next::Task(task, help);
            }
            s.idle.push(me.clone());
            drop(s);
            me.wait();
            s = self.lock();
            s.on_the_way = s.on_the_way.saturating_sub(1);
        }
    }

    /// The instance on thread `tid` is about to take work: from now its caller may hand its
    /// place over ([`Queue::hand_over`]).
    pub fn register(&self, tid: i32) {
        self.lock().threads.push(tid);
    }

    /// The caller of the instance on thread `tid` gave up on it at its timeout while it still
    /// ran: it no longer counts against the limit (unless `limit` instances are retiring
    /// already, or it has ended meanwhile), and the queue may get its work another instance.
    pub fn hand_over(&self, tid: i32) -> Help {
        let mut s = self.lock();
        let Some(at) = s.threads.iter().position(|&t| t == tid) else {
            return Help::None;
        };
        if s.retiring.len() >= self.limit {
            return Help::None;
        }
        s.threads.swap_remove(at);
        s.retiring.push(tid);
        s.live = s.live.saturating_sub(1);
        self.help(&mut s, Why::Freed)
    }

    /// An instance thread ends (retired, or it could not start its event loop, in which case
    /// it never `arrived` at the queue and has no `tid` registered): another may take its
    /// place, unless it handed that over already.
    pub fn ended(&self, arrived: bool, tid: Option<i32>) -> Help {
        let mut s = self.lock();
        if let Some(tid) = tid {
            s.finishing.retain(|&t| t != tid);
        }
        let retiring = tid.and_then(|t| s.retiring.iter().position(|&r| r == t));
        match retiring {
            Some(at) => {
                s.retiring.swap_remove(at);
            }
            None => {
                s.live = s.live.saturating_sub(1);
                if let Some(at) = tid.and_then(|t| s.threads.iter().position(|&r| r == t)) {
                    s.threads.swap_remove(at);
                }
            }
        }
        if !arrived {
            s.on_the_way = s.on_the_way.saturating_sub(1);
        }
        self.help(&mut s, Why::Freed)
    }

    /// A start that was asked for could not be made: undo it.
    pub fn start_failed(&self) {
        let mut s = self.lock();
        s.live = s.live.saturating_sub(1);
        s.on_the_way = s.on_the_way.saturating_sub(1);
    }

    /// The pool is gone: every idle instance wakes and ends; busy ones end after their task.
    pub fn close(&self) {
        let idle = {
            let mut s = self.lock();
            s.closed = true;
            s.on_the_way += s.idle.len();
            std::mem::take(&mut s.idle)
        };
        for w in idle {
            w.ring();
        }
    }

    /// Instances counting against the limit (started and not yet ended, less those that
    /// handed their place over), and how many of them wait idle for work.
    pub fn occupancy(&self) -> (usize, usize) {
        let s = self.lock();
        (s.live, s.idle.len())
    }

    /// Instance threads started and not yet ended, less those that handed their place over
    /// (for tests).
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.occupancy().0
    }

    /// Timed-out instances that handed their place over and have not ended (for tests).
    #[cfg(test)]
    pub fn retiring(&self) -> usize {
        self.lock().retiring.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn is_start(h: Help) -> bool {
        matches!(h, Help::Start)
    }

    fn is_none(h: Help) -> bool {
        matches!(h, Help::None)
    }

    /// Wait (bounded) until `n` instances are idle.
    fn until_idle<T>(q: &Queue<T>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.lock().idle.len() != n {
            assert!(Instant::now() < deadline, "never {n} idle");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_new_instance_starts_at_once_only_for_the_first_then_for_work_left_waiting() {
        let q = Queue::new(2);
        let me = Waiter::current();
        // The function has no instance: the first task starts one; later ones wait for it.
        assert!(is_start(q.push(1)));
        assert!(is_none(q.push(2)));
        assert!(is_none(q.push(3)));
        let Next::Task(1, help) = q.next(&me, Arrival::Started) else {
            panic!("not the first task")
        };
        // A busy instance is likely to finish soon: no start until a task has waited.
        assert!(is_none(help));
        assert!(is_start(q.nudge()));
        let Next::Task(2, help) = q.next(&me, Arrival::Started) else {
            panic!("not the second task")
        };
        assert!(is_none(help));
        // At the limit, a nudge starts nothing: the third waits for one of the two.
        assert!(is_none(q.nudge()));
        assert_eq!(q.live(), 2);
        assert!(matches!(q.next(&me, Arrival::Back(0)), Next::Task(3, _)));
        // Nothing queued: a nudge asks for nothing.
        assert!(is_none(q.nudge()));
        // An instance that ends makes room for another when work waits.
        assert!(is_none(q.ended(true, None)));
        assert!(is_none(q.push(4)));
        assert!(is_start(q.nudge()));
    }

    /// A queue of limit 2 whose one instance (thread 100) answered task 1 and is finishing.
    fn one_instance_finishing(me: &Arc<Waiter>) -> Queue<u32> {
        let q = Queue::new(2);
        assert!(is_start(q.push(1)));
        assert!(matches!(q.next(me, Arrival::Started), Next::Task(1, _)));
        q.register(100);
        q.finishing(100);
        q
    }

    #[test]
    fn a_task_queued_while_an_instance_finishes_its_answer_waits_for_it() {
        let me = Waiter::current();
        let q = one_instance_finishing(&me);
        // Queued while the instance tidies up after answering: nothing starts, not even at the
        // task's nudge.
        assert!(is_none(q.push(2)));
        assert!(is_none(q.nudge()));
        // It comes back and takes the task.
        assert!(matches!(q.next(&me, Arrival::Back(100)), Next::Task(2, _)));
        assert_eq!(q.live(), 1);
        // Busy again, not finishing: a task behind it gets its own instance at the nudge.
        assert!(is_none(q.push(3)));
        assert!(is_start(q.nudge()));

        // At the end of a task's wait, an instance still finishing is not counted on.
        let q = one_instance_finishing(&me);
        assert!(is_none(q.push(2)));
        assert!(is_none(q.nudge()));
        let (helps, refused) = q.serve_or_take_back(|t| *t == 2);
        assert_eq!(refused, None);
        assert_eq!(helps.len(), 1);
        assert!(helps.into_iter().all(is_start));

        // An instance that ends instead of coming back is no longer counted on.
        let q = one_instance_finishing(&me);
        assert!(is_none(q.ended(true, Some(100))));
        assert!(is_start(q.push(2)), "the function has no instance left");
    }

    #[test]
    fn a_timed_out_instance_hands_its_place_over_at_most_limit_at_a_time() {
        let q = Queue::new(1);
        let me = Waiter::current();
        assert!(is_start(q.push(1)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        q.register(100);
        // Its caller gave up on it while it ran: its place goes to a new instance at once.
        assert!(is_none(q.hand_over(100)));
        assert_eq!((q.live(), q.retiring()), (0, 1));
        assert!(is_start(q.push(2)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(2, _)));
        q.register(101);
        // One instance retires already (the limit): the next to time out keeps its place.
        assert!(is_none(q.hand_over(101)));
        assert_eq!((q.live(), q.retiring()), (1, 1));
        assert!(is_none(q.push(3)));
        assert!(is_none(q.nudge()));
        // The retiring thread ends: it had no place left to give.
        assert!(is_none(q.ended(true, Some(100))));
        assert_eq!((q.live(), q.retiring()), (1, 0));
        // The other ends with its place, which goes to the waiting task.
        assert!(is_start(q.ended(true, Some(101))));
        assert_eq!(q.live(), 1);
        // A hand-over for a thread that has ended already counts nothing.
        assert!(is_none(q.hand_over(101)));
        assert_eq!((q.live(), q.retiring()), (1, 0));
    }

    #[test]
    fn the_most_recently_idle_instance_is_woken_first_and_closing_ends_the_idle() {
        let q = Arc::new(Queue::<u32>::new(2));
        let me = Waiter::current();
        assert!(is_start(q.push(0)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(0, _)));
        assert!(is_none(q.push(1)));
        assert!(is_start(q.nudge()));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        // Two instances go idle, `a` first.
        let spawn = |q: &Arc<Queue<u32>>| {
            let q = q.clone();
            std::thread::spawn(move || {
                let me = Waiter::current();
                let mut got = Vec::new();
                while let Next::Task(t, help) = q.next(&me, Arrival::Back(0)) {
                    assert!(!help.wake_or_start());
                    got.push(t);
                }
                got
            })
        };
        let a = spawn(&q);
        until_idle(&q, 1);
        let b = spawn(&q);
        until_idle(&q, 2);
        // The task goes to `b`, which went idle last.
        match q.push(7) {
            Help::Wake(w) => {
                assert_eq!(w.thread.id(), b.thread().id());
                w.ring();
            }
            _ => panic!("no instance woken"),
        }
        until_idle(&q, 2);
        q.close();
        assert_eq!(b.join().unwrap(), vec![7]);
        assert_eq!(a.join().unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn a_task_an_instance_on_its_way_will_take_is_not_taken_back_as_unserved() {
        let q = Queue::new(2);
        let me = Waiter::current();
        // One instance is starting: it will take task 1, the oldest; nobody is coming for 2.
        assert!(is_start(q.push(1)));
        assert!(is_none(q.push(2)));
        assert_eq!(q.take_back_unserved(|t| *t == 1), None);
        assert_eq!(q.take_back_unserved(|t| *t == 2), Some(2));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        // Taken: nothing to take back.
        assert_eq!(q.take_back_unserved(|t| *t == 1), None);
    }

    #[test]
    fn a_nudge_whose_own_task_was_taken_still_gets_an_instance_for_the_one_left_behind() {
        let q = Queue::new(4);
        let me = Waiter::current();
        assert!(is_start(q.push(1)));
        assert!(is_none(q.push(2)));
        assert!(is_none(q.push(3)));
        // Task 3's timer fires first; the instance its nudge starts takes the oldest waiting
        // task, 2 — not 3.
        assert!(is_start(q.nudge()));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(2, _)));
        // Task 2's caller nudges now: its own task is taken, but 3 has no instance coming.
        assert!(is_start(q.nudge()));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(3, _)));
        assert_eq!(q.live(), 3);
    }

    #[test]
    fn a_task_left_waiting_is_refused_only_when_the_limit_allows_no_instance_for_it() {
        let q = Queue::new(2);
        let me = Waiter::current();
        assert!(is_start(q.push(1)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        assert!(is_none(q.push(2)));
        assert!(is_none(q.push(3)));
        // Nobody nudged for 2 and 3 (a late timer, say). At the end of 3's wait the one
        // instance the limit still allows is started; it will take 2, the older, and none is
        // left for 3.
        let (helps, refused) = q.serve_or_take_back(|t| *t == 3);
        assert_eq!(helps.len(), 1);
        assert!(helps.into_iter().all(is_start));
        assert_eq!(refused, Some(3), "the limit of 2 is reached");
        // With room, the task is served instead of refused.
        let q = Queue::new(3);
        assert!(is_start(q.push(1)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(1, _)));
        assert!(is_none(q.push(2)));
        assert!(is_none(q.push(3)));
        let (helps, refused) = q.serve_or_take_back(|t| *t == 3);
        assert_eq!(refused, None);
        assert_eq!(helps.len(), 2, "one instance each for 2 and 3");
        assert!(helps.into_iter().all(is_start));
        assert_eq!(q.live(), 3);
        // Taken already: nothing to do.
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(2, _)));
        assert!(matches!(q.next(&me, Arrival::Started), Next::Task(3, _)));
        let (helps, refused) = q.serve_or_take_back(|t| *t == 3);
        assert!(helps.is_empty() && refused.is_none());
    }
}
