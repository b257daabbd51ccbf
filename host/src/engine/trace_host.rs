//! The guest's `trace` imports, answered from the attempt's [`TraceSession`]. A checkpoint that
//! cannot be read or written never fails the attempt: the call runs (again) and the attempt's
//! log says why.

use super::attempt::AttemptState;
use crate::bindings::trace;

impl trace::Host for AttemptState {
    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.trace.as_ref().map_or(1, |t| t.attempt()))
    }

    async fn replay(
        &mut self,
        name: String,
        args: Vec<u8>,
    ) -> wasmtime::Result<Option<Vec<Vec<u8>>>> {
        let Some(session) = self.trace.as_ref() else {
            return Ok(None);
        };
        match session.replay(&name, &args).await {
            Ok(items) => Ok(items),
            Err(e) => {
                self.log_host_message(&format!("trace replay failed, running the call: {e}"));
                Ok(None)
            }
        }
    }

    async fn record(
        &mut self,
        name: String,
        args: Vec<u8>,
        items: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<(), String>> {
        let Some(session) = self.trace.as_mut() else {
            return Ok(Err("traces are not recorded outside a run".to_string()));
        };
        Ok(session
            .record(&name, &args, items)
            .await
            .map_err(|e| e.to_string()))
    }
}
