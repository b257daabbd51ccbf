//! `sluice cat <uri>` and `sluice get <uri> <path>`: fetch what runs produced.

use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_host::data::{DataError, ObjectReader};
use sluice_host::{Host, HostError};

use super::{exit, Failure};

/// Bytes fetched per read.
const FETCH_CHUNK_BYTES: usize = 1 << 20;

#[derive(clap::Args)]
pub struct CatArgs {
    /// A file URI, as `sluice run` prints it.
    uri: String,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// A file or directory URI, as `sluice run` prints it.
    uri: String,
    /// Where to write it (a directory is recreated under this path).
    path: PathBuf,
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::usage(format!("{}: {e}", path.display()))
}

/// Streams an open object into `out`.
async fn copy_object(mut reader: ObjectReader, out: &mut impl Write) -> Result<(), Failure> {
    loop {
        let chunk = reader
            .read(FETCH_CHUNK_BYTES)
            .await
            .map_err(|e| Failure::from(HostError::Data(e)))?;
        if chunk.is_empty() {
            return Ok(());
        }
        out.write_all(&chunk).map_err(|e| Failure {
            code: exit::HOST_FAILURE,
            message: format!("writing: {e}"),
        })?;
    }
}

pub async fn cat(host: &Host, args: CatArgs) -> Result<u8, Failure> {
    let reader = match host.open_uri(&args.uri).await {
        Ok(reader) => reader,
        // The URI names no object: the command's mistake, not the host's.
        Err(HostError::Data(DataError::NotAFile { .. })) => {
            let is_dir = host.list_uri(&args.uri).await.is_ok_and(|f| !f.is_empty());
            return Err(Failure::usage(match is_dir {
                true => format!(
                    "{}: a directory, not a file (fetch it with `sluice get <uri> <path>`)",
                    args.uri
                ),
                false => format!("{}: not a file", args.uri),
            }));
        }
        Err(e @ HostError::Data(DataError::Missing { .. })) => {
            return Err(Failure::usage(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    copy_object(reader, &mut out).await?;
    Ok(exit::OK)
}

pub async fn get(host: &Host, args: GetArgs) -> Result<u8, Failure> {
    // A file first; a URI with no object but files under it is a directory.
    match host.open_uri(&args.uri).await {
        Ok(reader) => {
            let mut file =
                std::fs::File::create(&args.path).map_err(|e| io_failure(&args.path, e))?;
            copy_object(reader, &mut file).await?;
        }
        Err(HostError::Data(DataError::Missing { .. }))
        | Err(HostError::Data(DataError::NotAFile { .. })) => {
            let files = host.list_uri(&args.uri).await?;
            if files.is_empty() {
                return Err(Failure::usage(format!(
                    "{}: missing: no file or directory at this URI",
                    args.uri
                )));
            }
            let base = args.uri.trim_end_matches('/');
            for (name, _) in files {
                let dest = args.path.join(&name);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_failure(parent, e))?;
                }
                let mut file = std::fs::File::create(&dest).map_err(|e| io_failure(&dest, e))?;
                let reader = host.open_uri(&format!("{base}/{name}")).await?;
                copy_object(reader, &mut file).await?;
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(exit::OK)
}
