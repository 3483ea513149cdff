//! [`Host`]: where a port of the sandbox is reached from this machine, from
//! [`Sandbox::get_host`](crate::Sandbox::get_host).

use std::fmt;

/// The address of a port inside the sandbox, as `host:port` or E2B's `{port}-{id}.{domain}`
/// (no scheme: add `http://`, `https://` or `ws://` as the service needs).
///
/// For an isolated local sandbox the address is a forward the SDK runs: it works while this
/// value lives (and keeps the sandbox from being torn down by the drop of its last handle
/// meanwhile; `kill()` still ends it), and connections to it are refused once it is dropped.
/// For the other backends dropping it changes nothing.
pub struct Host {
    addr: String,
    /// What keeps the address working, for an isolated local sandbox.
    _forward: Option<super::forward::Forward>,
}

impl Host {
    pub(crate) fn direct(addr: String) -> Host {
        Host {
            addr,
            _forward: None,
        }
    }

    pub(crate) fn forwarded(addr: String, forward: super::forward::Forward) -> Host {
        Host {
            addr,
            _forward: Some(forward),
        }
    }

    /// The address: `127.0.0.1:PORT`, `host:port`, or `{port}-{sandbox_id}.{domain}`.
    pub fn as_str(&self) -> &str {
        &self.addr
    }

    /// Whether the SDK forwards this address into the sandbox (an isolated local sandbox), so
    /// that it stops working when this value is dropped.
    pub fn is_forwarded(&self) -> bool {
        self._forward.is_some()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("addr", &self.addr)
            .field("forwarded", &self.is_forwarded())
            .finish()
    }
}

impl AsRef<str> for Host {
    fn as_ref(&self) -> &str {
        &self.addr
    }
}
