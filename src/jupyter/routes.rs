//! Who is waiting for which request, and which message ids were already delivered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::thread::Thread;

use crossbeam_channel::Sender;

use crate::jupyter::delivery::{Delivery, Failure, WakeOn};
use crate::jupyter::wire::Incoming;

/// A request is finished once its shell reply and its iopub `idle` have both arrived; they
/// travel on different sockets inside the server and come in either order.
#[derive(Debug)]
struct Route {
    tx: Sender<Delivery>,
    /// The thread that sent the request; it waits with [`crate::jupyter::delivery::next`].
    waiter: Thread,
    wake_on: WakeOn,
    replied: bool,
    idle: bool,
}

/// Pending requests by `msg_id`.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    routes: HashMap<String, Route>,
    /// Waiters with new deliveries, woken once per read batch by [`Routes::wake`].
    to_wake: Vec<Thread>,
}

/// Whether a waiter must be woken for this message. `status: busy` and `execute_input` never
/// let a waiter finish or call a callback, so they wait in the channel for the next message
/// that does (for `run_code("1")`: one wake-up less per round trip).
fn needs_waiter(msg: &Incoming) -> bool {
    match msg.msg_type.as_str() {
        "execute_input" => false,
        "status" => msg.content["execution_state"] != "busy",
        _ => true,
    }
}

/// What a server's IOPub rate-limit notice is delivered as: not the kernel's output, so not
/// `stream`. A numbered (hooked) execution recovers what the server dropped from the kernel's
/// ring; an unnumbered one cannot, and reports `OutputLost`.
pub(crate) const RATE_LIMITED: &str = "e2b_iopub_rate_limited";

/// jupyter_server's notice, a `stderr` stream message it makes itself when it starts dropping
/// a kernel's output (`iopub_msg_rate_limit`, `iopub_data_rate_limit`). The kernel's own
/// messages carry the hook's number; this one never does.
fn is_rate_notice(msg: &Incoming) -> bool {
    msg.msg_type == "stream"
        && msg.seq.is_none()
        && msg.content["name"] == "stderr"
        && msg.content["text"].as_str().is_some_and(|t| {
            t.starts_with("IOPub message rate exceeded.")
                || t.starts_with("IOPub data rate exceeded.")
        })
}

impl Routes {
    pub(crate) fn add(
        &mut self,
        msg_id: String,
        tx: Sender<Delivery>,
        waiter: Thread,
        wake_on: WakeOn,
    ) {
        self.routes.insert(
            msg_id,
            Route {
                tx,
                waiter,
                wake_on,
                replied: false,
                idle: false,
            },
        );
    }

    /// Unparks every waiter that got something since the last call.
    pub(crate) fn wake(&mut self) {
        for t in self.to_wake.drain(..) {
            t.unpark();
        }
    }

    pub(crate) fn remove(&mut self, msg_id: &str) {
        self.routes.remove(msg_id);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Hands a message to whoever waits for its parent. Returns false when nobody does.
    pub(crate) fn deliver(&mut self, mut msg: Incoming) -> bool {
        let Some(route) = self.routes.get_mut(&msg.parent_id) else {
            return false;
        };
        if is_rate_notice(&msg) {
            log::warn!(
                "the server dropped output of request {} (IOPub rate limit); recovering it",
                msg.parent_id
            );
            msg.msg_type = RATE_LIMITED.to_string();
        }
        if msg.channel == "shell" && msg.msg_type.ends_with("_reply") {
            route.replied = true;
        }
        if msg.msg_type == "status" && msg.content["execution_state"] == "idle" {
            route.idle = true;
        }
        let finished = route.replied && route.idle;
        // Listed once per batch: a burst of output for one waiter is one entry, not hundreds.
        let wanted = match route.wake_on {
            WakeOn::Output => needs_waiter(&msg),
            WakeOn::End => false,
        };
        if (finished || wanted) && !self.to_wake.iter().any(|t| t.id() == route.waiter.id()) {
            self.to_wake.push(route.waiter.clone());
        }
        let parent = msg.parent_id.clone();
        let gone = route.tx.send(Delivery::Message(msg)).is_err();
        if finished || gone {
            self.routes.remove(&parent);
        }
        true
    }

    /// Tells every pending request that the connection was re-established. From now on their
    /// waiters are woken for every message: after a cut some may be missing, which a waiter
    /// notices (and asks for) as the others come.
    pub(crate) fn notify_reconnected(&mut self, epoch: u64) {
        for route in self.routes.values_mut() {
            route.wake_on = WakeOn::Output;
            let _ = route.tx.send(Delivery::Reconnected { epoch });
            route.waiter.unpark();
        }
    }

    /// Ends one pending request with `failure`.
    pub(crate) fn fail(&mut self, msg_id: &str, failure: &Failure) {
        if let Some(route) = self.routes.remove(msg_id) {
            let _ = route.tx.send(Delivery::Failed(failure.clone()));
            route.waiter.unpark();
        }
    }

    /// Ends every pending request with `failure`.
    pub(crate) fn fail_all(&mut self, failure: &Failure) {
        for (_, route) in self.routes.drain() {
            let _ = route.tx.send(Delivery::Failed(failure.clone()));
            route.waiter.unpark();
        }
    }
}

/// The last `capacity` message ids seen, to drop what a replay delivers twice.
#[derive(Debug)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    pub(crate) fn new(capacity: usize) -> Seen {
        Seen {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// True the first time an id is offered.
    pub(crate) fn first_time(&mut self, msg_id: &str) -> bool {
        if msg_id.is_empty() {
            return true;
        }
        if self.set.contains(msg_id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(msg_id.to_string());
        self.order.push_back(msg_id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(channel: &str, msg_type: &str, parent: &str, content: serde_json::Value) -> Incoming {
        Incoming {
            channel: channel.into(),
            msg_id: format!("{msg_type}-{parent}"),
            msg_type: msg_type.into(),
            parent_id: parent.into(),
            parent_type: "execute_request".into(),
            date: None,
            content,
            seq: None,
        }
    }

    #[test]
    fn finishes_after_reply_and_idle_in_either_order() {
        for reply_first in [true, false] {
            let mut r = Routes::default();
            let (tx, rx) = crossbeam_channel::unbounded();
            r.add("p".into(), tx, std::thread::current(), WakeOn::Output);
            let reply = msg("shell", "execute_reply", "p", json!({"status": "ok"}));
            let idle = msg("iopub", "status", "p", json!({"execution_state": "idle"}));
            let (a, b) = if reply_first {
                (reply, idle)
            } else {
                (idle, reply)
            };
            assert!(r.deliver(a));
            assert!(!r.is_empty());
            assert!(r.deliver(b));
            assert!(r.is_empty());
            assert_eq!(rx.len(), 2);
        }
    }

    #[test]
    fn a_waiter_for_the_end_is_woken_at_the_end_until_a_reconnect() {
        let mut r = Routes::default();
        let (tx, rx) = crossbeam_channel::unbounded();
        r.add("p".into(), tx, std::thread::current(), WakeOn::End);
        let result = msg("iopub", "execute_result", "p", json!({"data": {}}));
        assert!(r.deliver(result.clone()));
        assert!(r.to_wake.is_empty(), "woken for output");
        r.notify_reconnected(1);
        assert!(r.deliver(Incoming {
            msg_id: "again".into(),
            ..result
        }));
        assert_eq!(r.to_wake.len(), 1, "not woken after a reconnect");
        r.wake();
        assert!(r.deliver(msg("shell", "execute_reply", "p", json!({}))));
        assert!(r.deliver(msg(
            "iopub",
            "status",
            "p",
            json!({"execution_state": "idle"})
        )));
        assert_eq!(r.to_wake.len(), 1);
        assert!(r.is_empty());
        // Reconnected, both results, the reply and the idle.
        assert_eq!(rx.len(), 5);
        r.wake();

        let (tx, _rx) = crossbeam_channel::unbounded();
        r.add("q".into(), tx, std::thread::current(), WakeOn::End);
        assert!(r.deliver(msg("shell", "execute_reply", "q", json!({}))));
        assert!(r.to_wake.is_empty(), "woken before the idle");
        assert!(r.deliver(msg(
            "iopub",
            "status",
            "q",
            json!({"execution_state": "idle"})
        )));
        assert_eq!(r.to_wake.len(), 1, "not woken at the end");
    }

    #[test]
    fn unknown_parent_is_not_delivered() {
        let mut r = Routes::default();
        assert!(!r.deliver(msg("iopub", "status", "nudge", json!({}))));
    }

    #[test]
    fn seen_forgets_oldest() {
        let mut s = Seen::new(2);
        assert!(s.first_time("a"));
        assert!(!s.first_time("a"));
        assert!(s.first_time("b"));
        assert!(s.first_time("c"));
        assert!(s.first_time("a"));
        assert!(s.first_time(""));
        assert!(s.first_time(""));
    }
}
