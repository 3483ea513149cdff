//! What a terminal's reader gets, and how a terminal ends.

/// What a terminal's reader gets, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PtyEvent {
    /// Output of the PTY: stdout and stderr of everything in it, with the echo of input and
    /// terminal escape sequences, as text (terminado decodes the PTY's bytes as UTF-8,
    /// replacing invalid sequences).
    Output(String),
    /// Continuity across a reconnect could not be kept or proven at this point.
    Gap(PtyGap),
    /// The terminal is over; nothing follows.
    End(PtyEnd),
}

/// What could not be kept across a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PtyGap {
    /// Output between the last delivered and the next was lost: the cut lasted longer than
    /// terminado's buffer of 1000 chunks.
    OutputLost,
    /// The replay after a cut lined up with what was delivered in more than one way (periodic
    /// output after more than 1000 chunks); the longest overlap was assumed, so output that
    /// repeated may be missing here.
    OutputAmbiguous,
    /// This input was written just before the link broke and the server could not confirm it
    /// read it: it may or may not have reached the shell. It is not sent again.
    InputUnconfirmed(String),
}

/// How a terminal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PtyEnd {
    /// The shell exited (`exit`, end of input, a signal).
    Exited {
        /// Its exit status, as `$?` would show it (128 + the signal's number when a signal
        /// ended it). `None` where the server does not report it: stock terminado tells its
        /// clients only that the shell is gone; the local sandbox's server tells the status.
        code: Option<i32>,
    },
    /// [`Terminal::kill`](crate::Terminal::kill) or [`Pty::kill`](crate::Pty::kill) killed it.
    Killed,
    /// [`PtyOptions::timeout`](crate::PtyOptions::timeout) passed and the terminal was killed.
    TimedOut,
    /// The terminal was gone from the server when the connection came back: its shell exited
    /// or someone deleted it while no client was connected. Its last output may be missing.
    Gone,
}
