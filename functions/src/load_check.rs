//! Load-time checks shared by both tiers: settling a module's evaluation, and loading a
//! function on a throwaway thread with a deadline, so a top-level runaway is a load error and
//! never a hung worker or instance.

use boa_engine::Context;
use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::builtins::JsPromise;

use crate::job_queue::{Jobs, run_job};

/// Run the jobs a module's evaluation queued and read how its promise ended.
pub fn settle_module(
    promise: &JsPromise,
    context: &mut Context,
    jobs: &Jobs,
) -> Result<(), String> {
    while let Some(job) = jobs.pop() {
        run_job(job, context).map_err(|e| format!("the top-level code failed: {e}"))?;
    }
    match promise.state() {
        PromiseState::Fulfilled(_) => Ok(()),
        PromiseState::Rejected(reason) => Err(format!(
            "the module failed to load: {}",
            reason
                .to_string(context)
                .map_or_else(|_| "unknown error".into(), |s| s.to_std_string_escaped())
        )),
        PromiseState::Pending => Err(
            "the module did not finish loading (a top-level await on something that never settles?)"
                .into(),
        ),
    }
}

/// Run `load` on a new thread named `name`; its answer, or an error once `deadline` passed.
pub fn within_deadline(
    name: &str,
    deadline: std::time::Duration,
    load: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(load());
        })
        .map_err(|e| format!("cannot start the load check: {e}"))?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "loading did not finish within {deadline:?} (a runaway at the top level?)"
        )),
    }
}
