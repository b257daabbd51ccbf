//! The guest's `tasks` imports, answered by the attempt's [`CallSession`]. What a child returns
//! reaches the caller whole (offloaded values brought back), and every reference in it becomes
//! one the caller may open.

use std::collections::BTreeMap;

use super::attempt::AttemptState;
use crate::bindings::tasks::{self, CallError};
use crate::data::DataSession;
use crate::executor::children::{returned_refs, CallFailure, CallResult};
use crate::values::{msgpack, Value};

fn to_wit(f: CallFailure) -> CallError {
    CallError {
        task: f.task,
        action: f.action,
        kind: f.kind,
        message: f.message,
        retryable: f.retryable,
    }
}

fn outside_a_run(task: &str) -> CallError {
    to_wit(CallFailure {
        task: task.to_string(),
        action: String::new(),
        kind: "failure".into(),
        message: "tasks can only be called while a task runs".into(),
        retryable: false,
    })
}

/// The outputs as the caller gets them; their references granted to it.
fn accept(data: Option<&mut DataSession>, result: CallResult) -> Result<Vec<u8>, CallError> {
    let outputs: BTreeMap<String, Value> = result.map_err(to_wit)?;
    if let Some(data) = data {
        for meta in returned_refs(&outputs) {
            data.grant(&meta);
        }
    }
    Ok(msgpack::encode_document(&outputs))
}

impl tasks::Host for AttemptState {
    async fn call(
        &mut self,
        task: String,
        inputs: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, CallError>> {
        let (Some(calls), Some(data)) = (self.calls.as_mut(), self.data.as_ref()) else {
            return Ok(Err(outside_a_run(&task)));
        };
        let result = calls.call(&task, &inputs, data).await;
        Ok(accept(self.data.as_mut(), result))
    }

    async fn submit(&mut self, task: String, inputs: Vec<u8>) -> wasmtime::Result<u64> {
        let (Some(calls), Some(data)) = (self.calls.as_mut(), self.data.as_ref()) else {
            return Err(wasmtime::Error::msg(
                "tasks can only be called while a task runs",
            ));
        };
        Ok(calls.submit(&task, &inputs, data))
    }

    async fn wait_next(&mut self) -> wasmtime::Result<Option<(u64, Result<Vec<u8>, CallError>)>> {
        let Some(calls) = self.calls.as_mut() else {
            return Ok(None);
        };
        let Some((seq, result)) = calls.wait_next().await else {
            return Ok(None);
        };
        Ok(Some((seq, accept(self.data.as_mut(), result))))
    }

    async fn map(
        &mut self,
        task: String,
        inputs: Vec<Vec<u8>>,
        concurrency: u32,
    ) -> wasmtime::Result<Vec<Result<Vec<u8>, CallError>>> {
        let (Some(calls), Some(data)) = (self.calls.as_mut(), self.data.as_ref()) else {
            return Ok(inputs.iter().map(|_| Err(outside_a_run(&task))).collect());
        };
        let results = calls.map(&task, &inputs, concurrency, data).await;
        Ok(results
            .into_iter()
            .map(|r| accept(self.data.as_mut(), r))
            .collect())
    }
}
