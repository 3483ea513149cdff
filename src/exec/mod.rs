//! One execution of code, from request to result: the builder and its wait ([`code`], on the
//! kernel layer's driver, `kernel::driver`). What the messages add up to is
//! `jupyter::accumulate`; the models they end up in are `model::execution` and `model::chart`.

pub(crate) mod code;
