//! One execution of code, from request to result: the builder and its wait ([`code`], on the
//! kernel layer's driver, `kernel::driver`), what the messages mean ([`accumulate`]), and the
//! models they end up in ([`models`], with [`chart`]'s typed charts).

pub(crate) mod accumulate;
pub(crate) mod chart;
pub(crate) mod code;
pub(crate) mod models;
