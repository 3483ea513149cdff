//! One execution of code, from request to result: the builder and its wait
//! ([`code`]), the driver that keeps an execution's messages whole and in order across
//! connection cuts ([`driver`], with [`recovery`]'s sequencing and replay records), what the
//! messages mean ([`accumulate`]), and the models they end up in ([`models`], with [`chart`]'s typed charts).

pub(crate) mod accumulate;
pub(crate) mod chart;
pub(crate) mod code;
pub(crate) mod driver;
pub(crate) mod models;
pub(crate) mod recovery;
