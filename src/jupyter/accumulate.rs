//! What an execution's messages mean: callback events, and the [`Execution`] they build.

use crate::jupyter::wire::Incoming;
use crate::model::execution::{Execution, ExecutionError, OutputMessage, RichResult};
use crate::output::{DroppedOutput, ResultTail, Tail, json_size};

/// What a message means to the user's callbacks.
pub(crate) enum Event {
    None,
    Stdout(OutputMessage),
    Stderr(OutputMessage),
    /// A rich result and the size of its MIME bundle.
    Result(Box<RichResult>, usize),
    Error(ExecutionError),
}

/// Builds an [`Execution`] from the messages of one request, keeping the last `cap` bytes of
/// each stream and of the rich results.
pub(crate) struct Accumulator {
    execution: Execution,
    stdout: Tail,
    stderr: Tail,
    results: ResultTail<RichResult>,
}

impl Accumulator {
    pub(crate) fn new(cap: usize) -> Accumulator {
        Accumulator {
            execution: Execution::default(),
            stdout: Tail::new(cap),
            stderr: Tail::new(cap),
            results: ResultTail::new(cap),
        }
    }

    /// The execution: what was kept, and what was dropped.
    pub(crate) fn finish(self) -> Execution {
        let (results, dropped_results, dropped_bytes) = self.results.finish();
        let mut execution = self.execution;
        execution.dropped = DroppedOutput {
            stdout_bytes: self.stdout.dropped(),
            stderr_bytes: self.stderr.dropped(),
            results: dropped_results,
            result_bytes: dropped_bytes,
        };
        execution.logs.stdout = self.stdout.into_chunks();
        execution.logs.stderr = self.stderr.into_chunks();
        execution.results = results;
        execution
    }

    /// What a message means; [`Accumulator::keep`] then stores it in the execution. The two
    /// steps let the callbacks borrow the output before it is moved into the execution, so
    /// output is never copied (a 64 KiB stream chunk used to be copied twice).
    pub(crate) fn apply(&mut self, mut m: Incoming) -> Event {
        let c = &m.content;
        match m.msg_type.as_str() {
            "stream" => {
                let error = c["name"] == "stderr";
                let line = match m.content.get_mut("text").map(serde_json::Value::take) {
                    Some(serde_json::Value::String(s)) => s,
                    _ => String::new(),
                };
                let msg = OutputMessage {
                    line,
                    timestamp: m.date.take(),
                    error,
                };
                if error {
                    Event::Stderr(msg)
                } else {
                    Event::Stdout(msg)
                }
            }
            "display_data" | "execute_result" => {
                let r = RichResult::from_bundle(&c["data"], m.msg_type == "execute_result");
                Event::Result(Box::new(r), json_size(&c["data"]))
            }
            "error" => Event::Error(error_from(c)),
            "execute_input" => {
                self.set_count(c);
                Event::None
            }
            "execute_reply" => {
                self.set_count(c);
                match c["status"].as_str() {
                    Some("error") if self.execution.error.is_none() => Event::Error(error_from(c)),
                    Some("aborted") if self.execution.error.is_none() => {
                        Event::Error(ExecutionError {
                            name: "ExecutionAborted".into(),
                            value: "the kernel aborted the execution".into(),
                            traceback: String::new(),
                        })
                    }
                    _ => Event::None,
                }
            }
            _ => Event::None,
        }
    }

    /// Stores what [`Accumulator::apply`] made of a message, after the callbacks saw it.
    pub(crate) fn keep(&mut self, event: Event) {
        match event {
            Event::None => {}
            Event::Stdout(m) => self.stdout.push(m.line),
            Event::Stderr(m) => self.stderr.push(m.line),
            Event::Result(r, size) => self.results.push(*r, size),
            Event::Error(e) => self.execution.error = Some(e),
        }
    }

    /// The execution count, where the messages carry it apart from the code's reply.
    pub(crate) fn set_execution_count(&mut self, count: Option<u32>) {
        self.execution.execution_count = count;
    }

    fn set_count(&mut self, c: &serde_json::Value) {
        if let Some(n) = c["execution_count"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
        {
            self.execution.execution_count = Some(n);
        }
    }
}

fn error_from(c: &serde_json::Value) -> ExecutionError {
    let traceback = match &c["traceback"] {
        serde_json::Value::Array(lines) => lines
            .iter()
            .filter_map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        serde_json::Value::String(s) => s.clone(),
        _ => String::new(),
    };
    ExecutionError {
        name: c["ename"].as_str().unwrap_or("").to_string(),
        value: c["evalue"].as_str().unwrap_or("").to_string(),
        traceback,
    }
}
