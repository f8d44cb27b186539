//! The job queue of a function's context: boa enqueues promise jobs here and the runtimes run
//! them one at a time, so a deadline or budget can be checked between jobs. Timers and network
//! calls of the edge tier are not boa jobs: the edge runtime's event loop keeps them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use boa_engine::job::{Job, JobExecutor};
use boa_engine::{Context, JsNativeError, JsResult};

/// Promise jobs of one context, run one at a time by the runtime that owns it.
#[derive(Default)]
pub struct Jobs {
    pub(crate) queue: RefCell<VecDeque<Job>>,
}

impl Jobs {
    /// The next job, if any.
    pub fn pop(&self) -> Option<Job> {
        self.queue.borrow_mut().pop_front()
    }

    /// Drop every queued job (after an invocation ends).
    pub fn clear(&self) {
        self.queue.borrow_mut().clear();
    }
}

/// Run one job to completion.
pub fn run_job(job: Job, context: &mut Context) -> JsResult<()> {
    match job {
        Job::PromiseJob(job) => job.call(context).map(drop),
        Job::GenericJob(job) => job.call(context).map(drop),
        // Module loading: the host loader's futures are ready at once, so polling in place
        // completes them; one that is not ready is an error, never a hang.
        Job::AsyncJob(job) => {
            let cell = RefCell::new(context);
            let mut future = pin!(job.call(&cell));
            let mut task = TaskContext::from_waker(Waker::noop());
            for _ in 0..1_000 {
                if let Poll::Ready(result) = future.as_mut().poll(&mut task) {
                    return result.map(drop);
                }
            }
            Err(JsNativeError::error()
                .with_message("an asynchronous host operation did not complete")
                .into())
        }
        // boa's timer jobs are never enqueued: verge's natives do not create them (the edge
        // runtime keeps its own timers).
        _ => Ok(()),
    }
}

impl JobExecutor for Jobs {
    fn enqueue_job(self: Rc<Self>, job: Job, _context: &mut Context) {
        self.queue.borrow_mut().push_back(job);
    }

    fn run_jobs(self: Rc<Self>, context: &mut Context) -> JsResult<()> {
        while let Some(job) = self.pop() {
            run_job(job, context)?;
        }
        Ok(())
    }
}
