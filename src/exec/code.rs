//! `sandbox.code(code)`: the options of one execution and the wait for its result, with user
//! callbacks called on the caller's thread as output arrives.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::accumulate::{Accumulator, Event};
use crate::jupyter::wire::Outgoing;
use crate::kernel::Kernel;
use crate::kernel::driver::{Driver, Waited};
use crate::model::execution::{Execution, ExecutionError, OutputMessage, RichResult};
use crate::sandbox::Sandbox;

/// How long a cell whose callback failed may take to end by itself before it is interrupted.
const SETTLE: Duration = Duration::from_millis(500);

type Callback<'a, T> = Box<dyn FnMut(&T) + 'a>;

/// Options of one execution; finish with [`CodeBuilder::run`].
#[must_use = "nothing runs until .run() is called"]
pub struct CodeBuilder<'a> {
    sandbox: &'a Sandbox,
    code: String,
    context: Option<&'a Context>,
    language: Option<String>,
    envs: crate::env_vars::EnvVars,
    timeout: Option<Option<Duration>>,
    restart_on_timeout: bool,
    max_output: usize,
    on_stdout: Option<Callback<'a, OutputMessage>>,
    on_stderr: Option<Callback<'a, OutputMessage>>,
    on_result: Option<Callback<'a, RichResult>>,
    on_error: Option<Callback<'a, ExecutionError>>,
}

impl std::fmt::Debug for CodeBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeBuilder")
            .field("code", &self.code)
            .field("context", &self.context.map(|c| &c.id))
            .field("language", &self.language)
            .field("timeout", &self.timeout)
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
    }
}

impl<'a> CodeBuilder<'a> {
    pub(crate) fn new(sandbox: &'a Sandbox, code: String) -> Self {
        CodeBuilder {
            sandbox,
            code,
            context: None,
            language: None,
            envs: Default::default(),
            timeout: None,
            restart_on_timeout: false,
            max_output: crate::output::DEFAULT_MAX_OUTPUT,
            on_stdout: None,
            on_stderr: None,
            on_result: None,
            on_error: None,
        }
    }

    /// Runs in this context instead of the default Python one. Not combinable with
    /// [`CodeBuilder::language`].
    pub fn context(mut self, context: &'a Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Runs in the sandbox's default context for this language (`python`, `javascript`, `r`,
    /// `bash`, `java`, where the server has the kernel). Defaults to `python`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Environment variables visible to this execution only. Defaults to none. In Python
    /// kernels they travel in the request and the kernel restores them after the cell, so they
    /// cost no extra round trip.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// Deadline for this execution; `None` waits as long as the kernel runs. On expiry the
    /// kernel is interrupted and the call returns [`Error::Timeout`] once the kernel is idle
    /// again, or [`Error::InterruptIgnored`] when it is still busy after
    /// [`Timeouts::interrupt_grace`](crate::Timeouts::interrupt_grace): the call never takes
    /// longer than the timeout plus that grace (plus a restart, with
    /// [`CodeBuilder::restart_on_timeout`]). Defaults to the sandbox's execution timeout (300 s
    /// unless configured).
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// Restart the context when the execution times out and the kernel ignores the interrupt,
    /// so the next call does not wait behind the stuck code. The context's state is lost; its
    /// cwd and env vars are set again, and the error says `restarted: true`. Defaults to
    /// `false`: the kernel is left running the code.
    pub fn restart_on_timeout(mut self, restart: bool) -> Self {
        self.restart_on_timeout = restart;
        self
    }

    /// The most bytes of output the [`Execution`] keeps, per stream: the last `bytes` of stdout,
    /// the last `bytes` of stderr, and the newest rich results that fit in `bytes` (counted by
    /// the size of their MIME bundles). The tail, because the end of a log holds its outcome
    /// (the traceback, the summary line) while the start of a flood is more of the same.
    /// [`Execution::dropped`] says what was left out; the callbacks see everything. `0` keeps
    /// nothing, for output that only the callbacks consume; `usize::MAX` keeps everything.
    /// Defaults to [`DEFAULT_MAX_OUTPUT`](crate::DEFAULT_MAX_OUTPUT), 16 MiB.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Called with each stdout chunk as it arrives, on the calling thread.
    pub fn on_stdout(mut self, f: impl FnMut(&OutputMessage) + 'a) -> Self {
        self.on_stdout = Some(Box::new(f));
        self
    }

    /// Called with each stderr chunk as it arrives, on the calling thread.
    pub fn on_stderr(mut self, f: impl FnMut(&OutputMessage) + 'a) -> Self {
        self.on_stderr = Some(Box::new(f));
        self
    }

    /// Called with each rich result (display output and the main result) as it arrives.
    pub fn on_result(mut self, f: impl FnMut(&RichResult) + 'a) -> Self {
        self.on_result = Some(Box::new(f));
        self
    }

    /// Called when the code raises.
    pub fn on_error(mut self, f: impl FnMut(&ExecutionError) + 'a) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }

    /// Runs the code and waits for it to finish.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (phase `Execution`) when the code outlived its timeout and the kernel
    /// went idle after the interrupt; [`Error::InterruptIgnored`] when it did not;
    /// [`Error::CallbackPanicked`] when a callback panicked; [`Error::ConnectionLost`] or
    /// [`Error::OutputLost`] when the link failed for good or output could not be recovered;
    /// [`Error::KernelDisrupted`] when the kernel died or restarted mid-execution;
    /// [`Error::RequestTooLarge`] for code larger than the server accepts;
    /// [`Error::InvalidArgument`] for conflicting options. An exception raised by the code is not
    /// an error: it is [`Execution::error`](crate::Execution::error) (see
    /// [`Execution::check`](crate::Execution::check)).
    pub fn run(mut self) -> Result<Execution, Error> {
        if self.context.is_some() && self.language.is_some() {
            return Err(Error::InvalidArgument(
                "pass either a context or a language, not both".into(),
            ));
        }
        let sandbox = self.sandbox;
        if let crate::plane::Plane::E2b(plane) = sandbox.plane()? {
            let plane = plane.clone();
            return self.run_on_e2b(&plane);
        }
        let kernel = match (self.context, self.language.as_deref()) {
            (Some(ctx), _) => sandbox.kernel_of(ctx)?,
            (None, Some(lang)) => sandbox.default_kernel_for(lang)?,
            (None, None) => sandbox.default_kernel_for("python")?,
        };
        let timeout = self.timeout.unwrap_or(sandbox.config().timeouts.execution);
        sandbox.ensure_prepared(&kernel)?;
        let envs = std::mem::take(&mut self.envs);
        if !envs.is_empty() && kernel.hooked() {
            // The hook sets them before the cell and restores them after it, in the kernel:
            // no extra round trip, and restored even if this client is cut off.
            let request = crate::kernel::envs::in_metadata(self.request(&kernel), &envs)?;
            let driver = self.send(&kernel, request)?;
            return self.execute(driver, timeout);
        }
        let Some(cells) = crate::kernel::envs::for_one_execution(&kernel, &envs)? else {
            let driver = self.send(&kernel, self.request(&kernel))?;
            return self.execute(driver, timeout);
        };
        // Set-up, cell and restore go to the kernel back to back: one round trip, and the
        // kernel runs the restore after the cell even if this client is cut off or gives up,
        // so the variables never leak into a later cell.
        let session = kernel.conn.session_id();
        let mut setup = Driver::send_until_end(
            kernel.clone(),
            Outgoing::execute(session, &cells.setup, true),
        )?;
        let cell = self.send(&kernel, self.request(&kernel))?;
        let restore = Driver::send_until_end(
            kernel.clone(),
            Outgoing::execute(session, &cells.restore, true),
        )?;
        let request_timeout = sandbox.config().timeouts.request;
        crate::kernel::finish_silent(&mut setup, request_timeout)?;
        let result = self.execute(cell, timeout);
        kernel.confirm_restore(restore, &cells.restore, request_timeout);
        result
    }

    /// Runs through E2B's code-interpreter server (see `plane::e2b`).
    fn run_on_e2b(mut self, plane: &crate::plane::e2b::E2bPlane) -> Result<Execution, Error> {
        let timeout = self
            .timeout
            .unwrap_or(self.sandbox.config().timeouts.execution);
        let code = std::mem::take(&mut self.code);
        let envs = std::mem::take(&mut self.envs);
        let context_id = self.context.map(|c| c.id.clone());
        let language = self.language.clone();
        let request = crate::plane::e2b::CodeRequest {
            code: &code,
            context_id: context_id.as_deref(),
            language: language.as_deref(),
            envs: &envs,
            timeout,
            max_output: self.max_output,
        };
        plane.run_code(&request, &mut |event| self.notify(event))
    }

    fn request(&self, kernel: &Kernel) -> Outgoing {
        Outgoing::execute(kernel.conn.session_id(), &self.code, false)
    }

    /// Sends the cell; without callbacks there is nothing to do before it ends, so the caller
    /// is woken once, at the end.
    fn send(&self, kernel: &Arc<Kernel>, request: Outgoing) -> Result<Driver, Error> {
        let callbacks = self.on_stdout.is_some()
            || self.on_stderr.is_some()
            || self.on_result.is_some()
            || self.on_error.is_some();
        if callbacks {
            Driver::send(kernel.clone(), request)
        } else {
            Driver::send_until_end(kernel.clone(), request)
        }
    }

    fn execute(
        &mut self,
        mut driver: Driver,
        timeout: Option<Duration>,
    ) -> Result<Execution, Error> {
        let kernel = driver.kernel().clone();
        let deadline = timeout.map(|t| Instant::now() + t);
        let grace = self.sandbox.config().timeouts.interrupt_grace;
        let mut acc = Accumulator::new(self.max_output);
        let mut panicked: Option<Error> = None;
        let mut timed_out = false;
        // A callback failed: interrupt the cell unless it ends within SETTLE.
        let mut interrupt_due = false;
        loop {
            let ready = match driver.wait(deadline, None, grace) {
                Ok(Waited::Ready(ready)) => ready,
                Ok(Waited::Interrupted) => {
                    timed_out = true;
                    continue;
                }
                Ok(Waited::Unsettled) if interrupt_due => {
                    interrupt_due = false;
                    driver.interrupt(grace);
                    continue;
                }
                Ok(Waited::Unsettled | Waited::Paused) => {
                    driver.abandon();
                    if timed_out && panicked.is_none() {
                        return Err(self.interrupt_ignored(&kernel, timeout));
                    }
                    log::warn!(
                        "kernel {} is still busy {grace:?} after an interrupt",
                        kernel.id
                    );
                    return Err(panicked.unwrap_or_else(|| timeout_error(timeout)));
                }
                Err(stop) => {
                    let phase = (TimeoutPhase::Execution, timeout.unwrap_or_default());
                    return Err(stop.into_error(&kernel.id, phase, || acc.finish()));
                }
            };
            for m in ready {
                let event = acc.apply(m);
                if panicked.is_none() && driver.settle_until().is_none() {
                    panicked = self.notify(&event).err();
                    if panicked.is_some() {
                        // Give the cell a moment to end by itself, then stop it.
                        interrupt_due = true;
                        driver.settle(SETTLE);
                    }
                }
                acc.keep(event);
            }
            if driver.finished() {
                let mut execution = acc.finish();
                if driver.lost() > 0 {
                    return Err(output_lost(Some(driver.lost()), execution));
                }
                execution.continuity = driver.continuity();
                return match (panicked, timed_out) {
                    (Some(p), _) => Err(p),
                    (None, true) => Err(timeout_error(timeout)),
                    (None, false) => Ok(execution),
                };
            }
        }
    }

    /// The error for a timed-out execution whose kernel is still busy after the interrupt;
    /// restarts the context first when asked to.
    fn interrupt_ignored(&self, kernel: &Arc<Kernel>, timeout: Option<Duration>) -> Error {
        log::warn!(
            "kernel {} ignored the interrupt of a timed-out execution{}",
            kernel.id,
            if self.restart_on_timeout {
                "; restarting it"
            } else {
                ""
            }
        );
        let restarted = self.restart_on_timeout
            && match self.sandbox.restart_kernel(kernel) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("could not restart kernel {}: {e}", kernel.id);
                    false
                }
            };
        Error::InterruptIgnored {
            kernel_id: kernel.id.clone(),
            after: timeout.unwrap_or_default(),
            restarted,
        }
    }

    /// Calls the user's callback for one event; a panic becomes an error, never unwinds further.
    fn notify(&mut self, event: &Event) -> Result<(), Error> {
        let (name, outcome) = match event {
            Event::None => return Ok(()),
            Event::Stdout(m) => (
                "on_stdout",
                self.on_stdout
                    .as_mut()
                    .map(|f| catch_unwind(AssertUnwindSafe(|| f(m)))),
            ),
            Event::Stderr(m) => (
                "on_stderr",
                self.on_stderr
                    .as_mut()
                    .map(|f| catch_unwind(AssertUnwindSafe(|| f(m)))),
            ),
            Event::Result(r, _) => (
                "on_result",
                self.on_result
                    .as_mut()
                    .map(|f| catch_unwind(AssertUnwindSafe(|| f(r)))),
            ),
            Event::Error(e) => (
                "on_error",
                self.on_error
                    .as_mut()
                    .map(|f| catch_unwind(AssertUnwindSafe(|| f(e)))),
            ),
        };
        match outcome {
            Some(Err(payload)) => Err(Error::CallbackPanicked {
                callback: name,
                message: crate::sync::panic_message(payload.as_ref()),
            }),
            _ => Ok(()),
        }
    }
}

fn output_lost(missing: Option<u64>, partial: Execution) -> Error {
    Error::OutputLost {
        missing,
        partial: Box::new(partial),
    }
}

fn timeout_error(timeout: Option<Duration>) -> Error {
    Error::Timeout {
        phase: TimeoutPhase::Execution,
        after: timeout.unwrap_or_default(),
    }
}
