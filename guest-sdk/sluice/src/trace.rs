//! Traces: checkpoints inside a task.
//!
//! `trace("fetch", &args, || body)` runs `body` the first time and the host records its result
//! as a checkpoint of the action; when the action runs again (a retry, or a resumed run), the
//! recorded result comes back and `body` does not run. A traced iterator is recorded once it is
//! exhausted and replayed item by item, without running anything again.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::sluice::task::trace as host;
use crate::log;

/// Which attempt of its action this is: 1 the first time, 2 after one retry, and so on.
pub fn attempt() -> u32 {
    host::attempt()
}

/// A checkpointed call: `body`'s result is recorded under `name` and `args`; a later attempt of
/// the same action gets it back without running `body`.
pub fn trace<A, T>(name: &str, args: &A, body: impl FnOnce() -> T) -> T
where
    A: Serialize + ?Sized,
    T: Serialize + DeserializeOwned,
{
    match try_trace(name, args, || Ok::<T, std::convert::Infallible>(body())) {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Like [`trace`], for a body that can fail: only `Ok` results are recorded, so an attempt that
/// comes after a failed call runs it again.
pub fn try_trace<A, T, E>(name: &str, args: &A, body: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    A: Serialize + ?Sized,
    T: Serialize + DeserializeOwned,
{
    let Some(args) = encode(name, "arguments", args) else {
        return body();
    };
    if let Some(items) = host::replay(name, &args) {
        match items.first().map(|item| decode::<T>(name, item)) {
            Some(Some(value)) if items.len() == 1 => return Ok(value),
            _ => log::warn(format!(
                "trace {name}: the recorded result does not fit this call; running it again"
            )),
        }
    }
    let value = body()?;
    if let Some(item) = encode(name, "result", &value) {
        record(name, &args, &[item]);
    }
    Ok(value)
}

/// A checkpointed iterator: the items `make()` yields are recorded once it is exhausted; a later
/// attempt of the same action replays them in order and never calls `make`.
pub fn trace_iter<A, T, I>(name: &str, args: &A, make: impl FnOnce() -> I) -> Traced<T>
where
    A: Serialize + ?Sized,
    T: Serialize + DeserializeOwned + 'static,
    I: IntoIterator<Item = T>,
    I::IntoIter: 'static,
{
    let Some(args) = encode(name, "arguments", args) else {
        return Traced::Untraced(Box::new(make().into_iter()));
    };
    if let Some(items) = host::replay(name, &args) {
        let decoded: Option<Vec<T>> = items.iter().map(|item| decode(name, item)).collect();
        match decoded {
            Some(values) => return Traced::Replay(values.into_iter()),
            None => log::warn(format!(
                "trace {name}: the recorded items do not fit this iterator; running it again"
            )),
        }
    }
    Traced::Live {
        name: name.to_string(),
        args,
        inner: Box::new(make().into_iter()),
        items: Vec::new(),
    }
}

/// The iterator [`trace_iter`] returns.
pub enum Traced<T> {
    /// Items recorded by an earlier attempt.
    Replay(std::vec::IntoIter<T>),
    /// Items being produced now, recorded when the last one has been taken.
    Live {
        name: String,
        args: Vec<u8>,
        inner: Box<dyn Iterator<Item = T>>,
        items: Vec<Vec<u8>>,
    },
    /// Tracing was impossible (the arguments do not encode); items are not recorded.
    Untraced(Box<dyn Iterator<Item = T>>),
    /// Exhausted and recorded.
    Done,
}

impl<T: Serialize + 'static> Iterator for Traced<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Traced::Replay(values) => values.next(),
            Traced::Untraced(inner) => inner.next(),
            Traced::Done => None,
            Traced::Live {
                name,
                args,
                inner,
                items,
            } => match inner.next() {
                Some(value) => {
                    match encode(name, "item", &value) {
                        Some(item) => items.push(item),
                        // One item that cannot be recorded makes the whole record incomplete.
                        None => {
                            let rest = std::mem::replace(inner, Box::new(std::iter::empty()));
                            *self = Traced::Untraced(rest);
                        }
                    }
                    Some(value)
                }
                None => {
                    record(name, args, items);
                    *self = Traced::Done;
                    None
                }
            },
        }
    }
}

fn record(name: &str, args: &[u8], items: &[Vec<u8>]) {
    if let Err(message) = host::record(name, args, items) {
        log::warn(format!("trace {name}: not recorded: {message}"));
    }
}

fn encode<V: Serialize + ?Sized>(name: &str, what: &str, value: &V) -> Option<Vec<u8>> {
    match rmp_serde::to_vec_named(value) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            log::warn(format!(
                "trace {name}: {what} cannot be encoded ({e}); not traced"
            ));
            None
        }
    }
}

fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Option<T> {
    match rmp_serde::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            log::warn(format!("trace {name}: recorded value unreadable: {e}"));
            None
        }
    }
}
