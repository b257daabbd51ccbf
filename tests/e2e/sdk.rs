//! What a component built with the Rust SDK alone links in.

use sluice_tests::fixture;
use wasmtime::component::Component;

/// The WASI interfaces a component imports, by name.
fn wasi_imports(name: &str) -> Vec<String> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = Component::from_file(&engine, fixture(name)).unwrap();
    component
        .component_type()
        .imports(&engine)
        .map(|(import, _)| import.to_string())
        .filter(|import| import.starts_with("wasi:"))
        .collect()
}

/// Every function a component imports is wired into each new instance of it, so what the SDK
/// links in is paid on every task run. The SDK itself must not pull in the file-system or
/// socket interfaces (about 75 functions with wasi-libc); a task that uses `std::fs` or
/// `std::net`, as the `basic` fixture's sandbox probe does, brings them in itself.
#[test]
fn the_sdk_alone_imports_no_file_system_or_sockets() {
    let heavy = |imports: &[String]| {
        imports
            .iter()
            .filter(|i| i.starts_with("wasi:filesystem/") || i.starts_with("wasi:sockets/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let chain = wasi_imports("chain");
    assert!(!chain.is_empty(), "the standard streams are imported");
    assert_eq!(heavy(&chain), Vec::<String>::new());
    assert!(
        !heavy(&wasi_imports("basic")).is_empty(),
        "the check sees what std::fs and std::net bring in"
    );
}
