//! Calling other tasks. Every `#[sluice::task]` gets, beside the function, a module of the same
//! name with typed calls:
//!
//! ```ignore
//! let y = add_one::call(41)?;                                   // run it and wait
//! let ys = add_one::map(0..100).concurrency(16).collect()?;     // many, in input order
//! let pending = add_one::submit(1);                             // start now, wait later
//! let y = pending.wait()?;
//! ```
//!
//! Tasks of other environments are called by name: `sluice::call::<i64, _>("other.double",
//! &Args { x: 2 })`. Each call is a child action the host records, caches and retries on its
//! own. A failed child comes back as a [`CallError`]; `?` in a task that returns
//! `sluice::Result` turns it into the task's own error, naming the child.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::sluice::task::tasks as host;

/// Why a call gave no outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The task called, `<environment>.<task>`.
    pub task: String,
    /// The child action's id (empty when the call was refused before a child was made).
    pub action: String,
    /// The child's error kind (`user`, `trap`, `deadline`, ...) or why the call was refused
    /// (`unknown-task`, `input`, `limit`).
    pub kind: String,
    pub message: String,
    /// Whether calling again could succeed.
    pub retryable: bool,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.task)?;
        if !self.action.is_empty() {
            write!(f, " (action {})", self.action)?;
        }
        write!(f, " failed: ({}) {}", self.kind, self.message)
    }
}

// Like `sluice::Error`, `CallError` does not implement `std::error::Error`: `?` then uses this
// conversion, which keeps the child's retryable flag, instead of the blanket one for std errors.
impl From<CallError> for crate::Error {
    fn from(e: CallError) -> Self {
        crate::Error {
            message: e.to_string(),
            retryable: e.retryable,
        }
    }
}

impl CallError {
    fn from_host(e: host::CallError) -> Self {
        CallError {
            task: e.task,
            action: e.action,
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }
    }

    fn local(task: &str, message: String) -> Self {
        CallError {
            task: task.to_string(),
            action: String::new(),
            kind: "failure".into(),
            message,
            retryable: false,
        }
    }
}

/// How a call's outputs document becomes a value: the task's single output `o0` by default.
pub trait FromOutputs: Sized {
    fn from_outputs(task: &str, bytes: &[u8]) -> Result<Self, CallError>;
}

#[derive(Deserialize)]
struct Single<T> {
    o0: T,
}

/// The single output (`o0`) of a task.
pub fn decode_single<T: DeserializeOwned>(task: &str, bytes: &[u8]) -> Result<T, CallError> {
    rmp_serde::from_slice::<Single<T>>(bytes)
        .map(|s| s.o0)
        .map_err(|e| CallError::local(task, format!("decoding outputs: {e}")))
}

/// A whole outputs document (a struct or map keyed `o0`, `o1`, ...).
pub fn decode_document<T: DeserializeOwned>(task: &str, bytes: &[u8]) -> Result<T, CallError> {
    rmp_serde::from_slice::<T>(bytes)
        .map_err(|e| CallError::local(task, format!("decoding outputs: {e}")))
}

fn encode<I: Serialize + ?Sized>(task: &str, inputs: &I) -> Result<Vec<u8>, CallError> {
    rmp_serde::to_vec_named(inputs)
        .map_err(|e| CallError::local(task, format!("encoding inputs: {e}")))
}

/// Calls `task` (a task of this environment, or `<environment>.<task>`) with `inputs` (a struct
/// or map of input names to values) and returns its single output.
pub fn call<O: DeserializeOwned, I: Serialize + ?Sized>(
    task: &str,
    inputs: &I,
) -> Result<O, CallError> {
    call_with(task, inputs, decode_single)
}

/// Like [`call`], decoding the outputs document with `decode`.
pub fn call_with<O, I: Serialize + ?Sized>(
    task: &str,
    inputs: &I,
    decode: fn(&str, &[u8]) -> Result<O, CallError>,
) -> Result<O, CallError> {
    let bytes = encode(task, inputs)?;
    let outputs = host::call(task, &bytes).map_err(CallError::from_host)?;
    decode(task, &outputs)
}

thread_local! {
    /// Results of submitted calls that finished while another one was waited for.
    static FINISHED: RefCell<HashMap<u64, Result<Vec<u8>, host::CallError>>> =
        RefCell::new(HashMap::new());
}

/// Waits until call `id` finishes; results of others that finish first are kept for them.
fn wait_for(id: u64) -> Option<Result<Vec<u8>, host::CallError>> {
    if let Some(done) = FINISHED.with(|f| f.borrow_mut().remove(&id)) {
        return Some(done);
    }
    while let Some((finished, result)) = host::wait_next() {
        if finished == id {
            return Some(result);
        }
        FINISHED.with(|f| f.borrow_mut().insert(finished, result));
    }
    None
}

/// A call started with `submit`; its result is taken with [`Pending::wait`] or
/// [`as_completed`].
pub struct Pending<O> {
    task: String,
    id: u64,
    decode: fn(&str, &[u8]) -> Result<O, CallError>,
    _out: PhantomData<O>,
}

impl<O> Pending<O> {
    /// Waits for this call and returns its outputs.
    pub fn wait(self) -> Result<O, CallError> {
        match wait_for(self.id) {
            Some(result) => self.take(result),
            None => Err(CallError::local(&self.task, "the call was lost".into())),
        }
    }

    fn take(&self, result: Result<Vec<u8>, host::CallError>) -> Result<O, CallError> {
        let bytes = result.map_err(CallError::from_host)?;
        (self.decode)(&self.task, &bytes)
    }
}

/// Starts `task` without waiting (see [`call`] for the names and inputs).
pub fn submit<O: DeserializeOwned, I: Serialize + ?Sized>(task: &str, inputs: &I) -> Pending<O> {
    submit_with(task, inputs, decode_single)
}

/// Like [`submit`], decoding the outputs document with `decode`.
pub fn submit_with<O, I: Serialize + ?Sized>(
    task: &str,
    inputs: &I,
    decode: fn(&str, &[u8]) -> Result<O, CallError>,
) -> Pending<O> {
    // Inputs that cannot be encoded are sent as an empty document: the host refuses the call
    // and the refusal comes back through `wait` like any other result.
    let bytes = encode(task, inputs).unwrap_or_else(|_| vec![0x80]);
    Pending {
        task: task.to_string(),
        id: host::submit(task, &bytes),
        decode,
        _out: PhantomData,
    }
}

/// The results of `calls` as they finish, each with its index in `calls`.
pub fn as_completed<O>(
    calls: Vec<Pending<O>>,
) -> impl Iterator<Item = (usize, Result<O, CallError>)> {
    let mut waiting: HashMap<u64, (usize, Pending<O>)> = calls
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p.id, (i, p)))
        .collect();
    std::iter::from_fn(move || {
        if waiting.is_empty() {
            return None;
        }
        // Ours that already finished first, then the next to finish.
        let stashed = FINISHED.with(|f| {
            let mut f = f.borrow_mut();
            let id = waiting.keys().copied().find(|id| f.contains_key(id))?;
            f.remove(&id).map(|r| (id, r))
        });
        let (id, result) = match stashed {
            Some(found) => found,
            None => loop {
                match host::wait_next() {
                    Some((id, result)) if waiting.contains_key(&id) => break (id, result),
                    Some((id, result)) => {
                        FINISHED.with(|f| f.borrow_mut().insert(id, result));
                    }
                    None => return None,
                }
            },
        };
        let (index, pending) = waiting.remove(&id)?;
        Some((index, pending.take(result)))
    })
}

/// Many calls of one task, built by `<task>::map(items)` or [`map`].
pub struct Map<O> {
    task: String,
    inputs: Result<Vec<Vec<u8>>, CallError>,
    concurrency: u32,
    decode: fn(&str, &[u8]) -> Result<O, CallError>,
}

impl<O> Map<O> {
    /// Runs at most `n` of the calls at a time (default: the host's per-run limit).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Every call's outputs, in the order of the inputs; the first failure (in that order)
    /// if any failed.
    pub fn collect(self) -> Result<Vec<O>, CallError> {
        self.collect_results().into_iter().collect()
    }

    /// Every call's result, in the order of the inputs.
    pub fn collect_results(self) -> Vec<Result<O, CallError>> {
        let inputs = match self.inputs {
            Ok(inputs) => inputs,
            Err(e) => return vec![Err(e)],
        };
        host::map(&self.task, &inputs, self.concurrency)
            .into_iter()
            .map(|r| match r {
                Ok(bytes) => (self.decode)(&self.task, &bytes),
                Err(e) => Err(CallError::from_host(e)),
            })
            .collect()
    }
}

/// Calls `task` once per item of `inputs` (each a struct or map of input names to values).
pub fn map<O: DeserializeOwned, I: Serialize>(
    task: &str,
    inputs: impl IntoIterator<Item = I>,
) -> Map<O> {
    map_with(task, inputs, |i| i, decode_single)
}

/// Like [`map`], turning each item into its inputs with `to_inputs` and decoding the outputs
/// with `decode`.
pub fn map_with<O, T, I: Serialize>(
    task: &str,
    items: impl IntoIterator<Item = T>,
    to_inputs: impl Fn(T) -> I,
    decode: fn(&str, &[u8]) -> Result<O, CallError>,
) -> Map<O> {
    let inputs = items
        .into_iter()
        .map(|item| encode(task, &to_inputs(item)))
        .collect();
    Map {
        task: task.to_string(),
        inputs,
        concurrency: 0,
        decode,
    }
}
