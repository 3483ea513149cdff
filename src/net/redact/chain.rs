//! The ureq agent whose connector chain ends in the redacting transport: below ureq, after it
//! has logged what it writes and before TLS, secret header values replace their masks
//! ([`super::headers`]); with hidden bodies, response bodies are taken out on their way in
//! before ureq reads (and logs) them ([`super::bodies`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, DefaultConnector, LazyBuffers,
    NextTimeout, TcpConnector, Transport,
};

use super::bodies::Framing;
use super::headers::{MaskedHeaders, Swap, request_method, unmask};
use crate::config::Secret;
use crate::net::RustlsConnector;
use crate::net::conn::UnixConnector;

/// An agent with `config` whose requests may carry `headers` through [`MaskedHeaders`]. With
/// `hide_bodies`, ureq reads `*` for every response body and the caller takes the real one
/// with [`super::take_hidden_body`].
pub(crate) fn agent<'a>(
    config: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    headers: impl Iterator<Item = (&'a str, &'a Secret)>,
    unix: Option<&Arc<Path>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    hide_bodies: bool,
) -> (ureq::Agent, MaskedHeaders) {
    let config = if hide_bodies {
        // ureq could not decode a body it only sees as `*`.
        config.accept_encoding("identity").build()
    } else {
        config.build()
    };
    let mut shown = Vec::new();
    let mut swaps = Vec::new();
    for (name, secret) in headers {
        let (swap, mask) = Swap::new(name, secret);
        swaps.push(swap);
        shown.push((name.to_string(), mask));
    }
    let last = Unmask {
        swaps: Arc::new(swaps),
        hide_bodies,
    };
    let agent = match (unix, tls) {
        (Some(path), _) => ureq::Agent::with_parts(
            config,
            UnixConnector(path.clone()).chain(last),
            DefaultResolver::default(),
        ),
        // ureq's default chain, with the SDK's TLS in place of ureq's.
        (None, Some(tls)) => ureq::Agent::with_parts(
            config,
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(RustlsConnector(tls))
                .chain(last),
            DefaultResolver::default(),
        ),
        (None, None) => ureq::Agent::with_parts(
            config,
            DefaultConnector::new().chain(last),
            DefaultResolver::default(),
        ),
    };
    (agent, MaskedHeaders(shown))
}

#[derive(Clone)]
struct Unmask {
    swaps: Arc<Vec<Swap>>,
    hide_bodies: bool,
}

impl fmt::Debug for Unmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmask").finish_non_exhaustive()
    }
}

impl Connector<Box<dyn Transport>> for Unmask {
    type Out = Unmasking;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let hiding = self.hide_bodies.then(|| Hiding {
            buffers: crate::net::transport_buffers(details),
            framing: Framing::Idle,
        });
        Ok(chained.map(|inner| Unmasking {
            inner,
            swaps: self.swaps.clone(),
            hiding,
        }))
    }
}

/// The transport that swaps secrets for masks in what it transmits, and with `hiding`, takes
/// response bodies for itself.
struct Unmasking {
    inner: Box<dyn Transport>,
    swaps: Arc<Vec<Swap>>,
    hiding: Option<Hiding>,
}

/// What ureq reads and writes when bodies are hidden: buffers of this transport's own, since
/// ureq's [`Buffers`] give no way to change input once it is in them. Output is copied to the
/// inner transport's buffers when transmitted, input copied from them as it arrives.
struct Hiding {
    buffers: LazyBuffers,
    framing: Framing,
}

impl fmt::Debug for Unmasking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmasking")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Transport for Unmasking {
    fn buffers(&mut self) -> &mut dyn Buffers {
        match &mut self.hiding {
            Some(hiding) => &mut hiding.buffers,
            None => self.inner.buffers(),
        }
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let Some(hiding) = &mut self.hiding else {
            let out = self.inner.buffers().output();
            let end = amount.min(out.len());
            unmask(&mut out[..end], &self.swaps);
            return self.inner.transmit_output(amount, timeout);
        };
        let out = hiding.buffers.output();
        let end = amount.min(out.len());
        let out = &mut out[..end];
        unmask(out, &self.swaps);
        if let Some(method) = request_method(out) {
            // The next bytes in are the answer to this request.
            hiding.framing = Framing::head(method == b"HEAD");
        }
        // The inner buffers are as large as these unless configured apart: send in pieces.
        let mut sent = 0;
        while sent < out.len() {
            let room = self.inner.buffers().output();
            let n = room.len().min(out.len() - sent);
            if n == 0 {
                return Err(ureq::Error::Io(std::io::Error::other(
                    "the transport has no output buffer",
                )));
            }
            room[..n].copy_from_slice(&out[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(hiding) = &mut self.hiding else {
            return self.inner.await_input(timeout);
        };
        // Bytes the last call had no room for are used before waiting for more.
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let from = self.inner.buffers().input();
        let to = hiding.buffers.input_append_buf();
        let n = from.len().min(to.len());
        to[..n].copy_from_slice(&from[..n]);
        hiding.framing.hide(&mut to[..n]);
        hiding.buffers.input_appended(n);
        self.inner.buffers().input_consume(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
