//! Cloud object stores by URL. Credentials, region and endpoint come from the environment the
//! way each provider's own tools read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for an S3-compatible server on
//! plain HTTP; `GOOGLE_*`; `AZURE_*`).

use std::sync::{Arc, Once};

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// Region used when the environment names none (S3-compatible servers accept any).
const DEFAULT_AWS_REGION: &str = "us-east-1";

/// TLS for the HTTP client: rustls with the ring provider, installed once per process.
fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if the embedding program installed a provider first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Opens `scheme://bucket[/prefix]`.
pub(super) fn open(scheme: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, String> {
    install_tls_provider();
    let rest = rest.trim_end_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("the URL names no bucket".to_string());
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                builder = builder.with_region(DEFAULT_AWS_REGION);
            }
            Arc::new(builder.build().map_err(|e| e.to_string())?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "az" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("unknown cloud scheme {other:?}")),
    };
    if prefix.is_empty() {
        Ok(store)
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}
