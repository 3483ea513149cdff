//! run_code against a real local jupyter_server: state, streams, rich results, errors,
//! callbacks and timeouts.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::support::{deadline, local};
use e2b_blocking::{Error, TimeoutPhase};

#[test]
fn state_persists_across_calls() {
    deadline(|| {
        let sbx = local();
        let _ = sbx.run_code("x = 20").unwrap();
        let _ = sbx.run_code("x += 1").unwrap();
        let exec = sbx.run_code("x * 2").unwrap();
        assert_eq!(exec.text(), Some("42"));
        assert!(exec.error.is_none());
        let first = exec.execution_count.unwrap();
        let next = sbx.run_code("x").unwrap().execution_count.unwrap();
        assert_eq!(next, first + 1);
    });
}

#[test]
fn streams_results_and_callbacks_arrive_in_order() {
    deadline(|| {
        let sbx = local();
        // In callback order: stream text, or a result. Output between two results is compared
        // per stream: stdout and stderr are separate buffers in the kernel, flushed
        // independently (which of out1 and err1 comes first is the kernel's choice, and a slow
        // kernel may flush one print in two messages, `err1` and then `\n`); a display flushes
        // both, so everything is ordered around the results.
        enum Seen {
            Out(String),
            Err(String),
            Result(String),
        }
        let seen = RefCell::new(Vec::new());
        let code = "import sys\nfrom IPython.display import display, HTML\n\
                    print('out1')\nprint('err1', file=sys.stderr)\n\
                    display(HTML('<i>shown</i>'))\nprint('out2')\n6 * 7";
        let exec = sbx
            .code(code)
            .on_stdout(|m| seen.borrow_mut().push(Seen::Out(m.line.clone())))
            .on_stderr(|m| {
                assert!(m.error);
                seen.borrow_mut().push(Seen::Err(m.line.clone()))
            })
            .on_result(|r| {
                seen.borrow_mut().push(Seen::Result(format!(
                    "{}:{}",
                    r.is_main_result,
                    r.formats().join(",")
                )))
            })
            .run()
            .unwrap();
        assert_eq!(exec.logs.stdout.concat(), "out1\nout2\n");
        assert_eq!(exec.logs.stderr.concat(), "err1\n");
        assert_eq!(exec.results.len(), 2);
        assert!(!exec.results[0].is_main_result);
        assert_eq!(exec.results[0].html.as_deref(), Some("<i>shown</i>"));
        assert!(exec.results[1].is_main_result);
        assert_eq!(exec.text(), Some("42"));
        let mut order = Vec::new();
        let (mut out, mut err) = (String::new(), String::new());
        for event in seen.into_inner() {
            match event {
                Seen::Out(text) => out.push_str(&text),
                Seen::Err(text) => err.push_str(&text),
                Seen::Result(result) => {
                    order.push(format!("stdout:{out:?} stderr:{err:?}"));
                    order.push(format!("result:{result}"));
                    out.clear();
                    err.clear();
                }
            }
        }
        order.push(format!("stdout:{out:?} stderr:{err:?}"));
        assert_eq!(
            order,
            [
                r#"stdout:"out1\n" stderr:"err1\n""#,
                "result:false:text,html",
                r#"stdout:"out2\n" stderr:"""#,
                "result:true:text",
                r#"stdout:"" stderr:"""#,
            ]
        );
    });
}

#[test]
fn exception_is_execution_error_not_err() {
    deadline(|| {
        let sbx = local();
        let mut called = 0;
        let exec = sbx
            .code("def f():\n    raise ValueError('bad value')\nf()")
            .on_error(|e| {
                assert_eq!(e.name, "ValueError");
                called += 1;
            })
            .run()
            .unwrap();
        assert_eq!(called, 1);
        let err = exec.error.expect("an error");
        assert_eq!(err.name, "ValueError");
        assert_eq!(err.value, "bad value");
        assert!(
            err.traceback.contains("raise ValueError"),
            "{}",
            err.traceback
        );
        // The kernel is fine afterwards.
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}

#[test]
fn a_failed_cell_never_aborts_a_queued_one() {
    // With ipykernel's stop-on-error, a cell queued behind a failing one comes back
    // `aborted` without running, and so could one sent just after the failure. Each call
    // stands alone here: another thread's failure must not cancel this thread's cell.
    deadline(|| {
        let sbx = local();
        std::thread::scope(|s| {
            let failing = s.spawn(|| sbx.run_code("import time; time.sleep(1); 1/0"));
            std::thread::sleep(Duration::from_millis(300));
            let queued = sbx.run_code("21 * 2").unwrap();
            assert!(queued.error.is_none(), "{:?}", queued.error);
            assert_eq!(queued.text(), Some("42"));
            let failed = failing.join().unwrap().unwrap();
            assert_eq!(failed.error.unwrap().name, "ZeroDivisionError");
        });
    });
}

#[test]
fn timeout_interrupts_and_the_next_call_works_at_once() {
    deadline(|| {
        let sbx = local();
        let _ = sbx.run_code("y = 5").unwrap();
        let err = sbx
            .code("import time\ntime.sleep(60)")
            .timeout(Duration::from_millis(500))
            .run()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    phase: TimeoutPhase::Execution,
                    ..
                }
            ),
            "{err:?}"
        );
        // A one-second deadline on the next call: it must not queue behind the sleep.
        let exec = sbx.code("y").timeout(Duration::from_secs(1)).run().unwrap();
        assert_eq!(exec.text(), Some("5"));
    });
}

#[test]
fn panicking_callback_is_an_error_and_the_sandbox_survives() {
    deadline(|| {
        let sbx = local();
        let err = sbx
            .code("print('boom')")
            .on_stdout(|_| panic!("callback exploded"))
            .run()
            .unwrap_err();
        match err {
            Error::CallbackPanicked { callback, message } => {
                assert_eq!(callback, "on_stdout");
                assert_eq!(message, "callback exploded");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(sbx.run_code("3").unwrap().text(), Some("3"));
    });
}

#[test]
fn large_output_arrives_whole() {
    deadline(|| {
        let sbx = local();
        // 5 MB in one message: beyond the server's default IOPub data-rate limit.
        let exec = sbx.run_code("print('x' * 5_000_000)").unwrap();
        let total: usize = exec.logs.stdout.iter().map(String::len).sum();
        assert_eq!(total, 5_000_001);
        // Many small messages: beyond the default message-rate limit.
        let exec = sbx.run_code("for i in range(5000): print(i)").unwrap();
        let text = exec.logs.stdout.concat();
        assert_eq!(text.lines().count(), 5000);
        assert_eq!(text.lines().last(), Some("4999"));
    });
}

#[test]
fn an_execution_keeps_the_tail_of_each_stream_and_counts_the_rest() {
    deadline(|| {
        let sbx = local();
        let (mut out, mut err) = (String::new(), String::new());
        let exec = sbx
            .code(
                "import sys\nfor i in range(2000):\n    print(i)\n    print(f'e{i}', file=sys.stderr)",
            )
            .max_output(100)
            .on_stdout(|m| out.push_str(&m.line))
            .on_stderr(|m| err.push_str(&m.line))
            .run()
            .unwrap();
        let all_out: String = (0..2000).map(|i| format!("{i}\n")).collect();
        let all_err: String = (0..2000).map(|i| format!("e{i}\n")).collect();
        assert_eq!((out.as_str(), err.as_str()), (&all_out[..], &all_err[..]));
        assert_eq!(exec.logs.stdout.concat(), all_out[all_out.len() - 100..]);
        assert_eq!(exec.logs.stderr.concat(), all_err[all_err.len() - 100..]);
        assert_eq!(exec.dropped.stdout_bytes, all_out.len() as u64 - 100);
        assert_eq!(exec.dropped.stderr_bytes, all_err.len() as u64 - 100);
        assert!(exec.dropped.any());

        // Nothing kept, everything counted; a result that fits is no part of it.
        let exec = sbx.code("print('hello')\n42").max_output(0).run().unwrap();
        assert!(exec.logs.stdout.is_empty() && exec.results.is_empty());
        assert_eq!((exec.dropped.stdout_bytes, exec.dropped.results), (6, 1));
        let exec = sbx.run_code("print('hello')\n42").unwrap();
        assert!(!exec.dropped.any());
        assert_eq!(exec.text(), Some("42"));
    });
}

/// ipykernel sends a print that was not flushed as one message, which the kernel's hook splits
/// into 1024 pieces of 256 Ki characters for 256 MiB. The IOPub socket used to drop those past
/// its 1000-message mark, the end of the execution with them (the call ended in
/// `InterruptIgnored` at its timeout), and from 512 MiB the kernel's IOPub thread blocked for
/// good on its own event pipe. Now the pieces go at the pace the server reads them.
#[test]
fn a_256_mib_unflushed_print_streams_whole() {
    deadline(|| {
        let sbx = local();
        let mut seen = 0usize;
        let started = Instant::now();
        let exec = sbx
            .code("print('x' * (256 << 20))")
            .on_stdout(|m| seen += m.line.len())
            .timeout(Duration::from_secs(120))
            .run()
            .unwrap();
        println!("256 MiB print streamed in {:?}", started.elapsed());
        let total = (256 << 20) + 1;
        assert_eq!(seen, total);
        let kept: usize = exec.logs.stdout.iter().map(String::len).sum();
        assert!(kept <= e2b_blocking::DEFAULT_MAX_OUTPUT);
        assert_eq!(exec.dropped.stdout_bytes, (total - kept) as u64);
        assert!(exec.logs.stdout.concat().ends_with("xx\n"));
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}

/// The same flood in pieces of 1 KiB (the hook's split size lowered), so that a small print
/// makes far more pieces than IOPub's mark and the IOPub thread's event pipe (1000 + 1000)
/// hold: 16 MiB in 16384 messages, each of which arrives, in order.
#[test]
fn a_print_split_into_thousands_of_messages_arrives_whole_and_in_order() {
    deadline(|| {
        let sbx = local();
        let _ = sbx
            .run_code("__import__('__e2b_hook').limits['split'] = 1024")
            .unwrap();
        let (mut seen, mut messages) = (0usize, 0usize);
        let exec = sbx
            .code("print(''.join(f'{i:09d}\\n' for i in range((16 << 20) // 10)))")
            .on_stdout(|m| {
                seen += m.line.len();
                messages += 1;
            })
            .max_output(64 << 20)
            .timeout(Duration::from_secs(120))
            .run()
            .unwrap();
        assert!(messages > 16000, "{messages} messages");
        let text = exec.logs.stdout.concat();
        let expected: String = (0..(16 << 20) / 10)
            .map(|i| format!("{i:09}\n"))
            .chain(["\n".to_string()])
            .collect();
        assert_eq!(seen, expected.len());
        assert!(text == expected, "the output is not whole and in order");
    });
}

#[test]
fn calls_from_several_threads_share_one_sandbox() {
    deadline(|| {
        let sbx = local();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let sbx = &sbx;
                    s.spawn(move || sbx.run_code(format!("{i} * 10")).unwrap())
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                let exec = h.join().unwrap();
                assert_eq!(exec.text(), Some((i * 10).to_string().as_str()));
            }
        });
    });
}

#[test]
fn calls_after_close_fail_with_closed() {
    deadline(|| {
        let sbx = local();
        sbx.kill().unwrap();
        assert!(matches!(sbx.run_code("1"), Err(Error::Closed)));
        assert!(sbx.kill().is_ok(), "kill is idempotent");
    });
}

/// A cell that ignores SIGINT cannot be interrupted: the call still returns at its deadline
/// plus the interrupt grace, says the kernel is still busy, and the default context can be
/// restarted by hand or on request.
#[test]
fn a_cell_that_ignores_interrupts_returns_at_its_deadline_and_says_the_kernel_is_busy() {
    deadline(|| {
        let sbx = local();
        let stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n\
                        time.sleep(60)";
        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        let err = sbx.code(stubborn).timeout(timeout).run().unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&err, Error::InterruptIgnored { after, restarted: false, .. } if *after == timeout),
            "{err:?}"
        );
        assert!(err.is_timeout());
        assert!(err.to_string().contains("restart the context"), "{err}");
        // Hang bound, far from the 60 s the cell would take: deadline + 500 ms grace.
        assert!(took < Duration::from_secs(5), "returned after {took:?}");

        sbx.restart_context(&sbx.default_context().unwrap())
            .unwrap();
        let exec = sbx
            .code("1 + 1")
            .timeout(Duration::from_secs(30))
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("2"));

        // Asked up front, the restart happens before the call returns.
        let _ = sbx.run_code("kept = 1").unwrap();
        let err = sbx
            .code(stubborn)
            .timeout(timeout)
            .restart_on_timeout(true)
            .run()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InterruptIgnored {
                    restarted: true,
                    ..
                }
            ),
            "{err:?}"
        );
        let exec = sbx
            .code("'kept' in globals()")
            .timeout(Duration::from_secs(30))
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("False"), "the restart cleared the state");
    });
}

/// jupyter_server resets a connection on a message over 10 MiB; the SDK checks the size
/// before sending, so an oversize cell fails at once and nothing is sent.
#[test]
fn an_oversize_cell_fails_at_once_with_a_typed_error() {
    deadline(|| {
        let sbx = local();
        let big = format!("x = '{}'", "a".repeat(11 << 20));
        let started = Instant::now();
        let err = sbx.run_code(big).unwrap_err();
        assert!(
            matches!(err, Error::RequestTooLarge { size, limit } if size > limit && limit == 10 << 20),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "hang bound");
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        assert!(
            matches!(
                sbx.connection_state(),
                e2b_blocking::ConnectionState::Connected
            ),
            "nothing was sent, so the connection never broke"
        );
    });
}

/// With the client limit raised past the server's, the server resets the connection each time
/// the cell is sent; the replay hook says the kernel never saw it, and the SDK resends it a
/// bounded number of times, then fails, instead of resending until the deadline.
#[test]
fn a_request_that_breaks_the_connection_every_time_is_not_resent_for_ever() {
    deadline(|| {
        crate::support::init_logs();
        let sbx = e2b_blocking::Sandbox::builder()
            .max_request_size(64 << 20)
            .local()
            .unwrap();
        let big = format!("x = '{}'", "a".repeat(11 << 20));
        let err = sbx.code(big).timeout(None).run().unwrap_err();
        match &err {
            Error::ConnectionLost { source, .. } => {
                let cause = source.as_ref().map(|s| s.to_string()).unwrap_or_default();
                assert!(cause.contains("times the request was"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
    });
}

mod glob_import {
    // `Result` is this crate's alias, so a glob import leaves `fn main() -> Result<()>` working.
    use e2b_blocking::*;

    #[allow(dead_code)]
    fn main_like() -> Result<()> {
        let sbx = Sandbox::local()?;
        let _: &RichResult = sbx
            .run_code("1")?
            .check()?
            .main_result()
            .ok_or(Error::Closed)?;
        Ok(())
    }
}
