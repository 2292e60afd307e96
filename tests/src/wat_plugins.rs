//! Plugins built by the tests from WebAssembly text, for behaviour no Rust
//! tool would show on purpose (a `describe()` that never returns).

use sha2::{Digest, Sha256};
use std::path::Path;

/// A component of the `tool` world whose `describe()` spins forever.
pub const LOOPING_DESCRIBE: &str = r#"(component
  (core module $m
    (memory (export "mem") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "describe") (result i32) (loop $spin (br $spin)) (i32.const 0))
    (func (export "call") (param i32 i32) (result i32) (unreachable)))
  (core instance $i (instantiate $m))
  (func (export "describe") (result string) (canon lift (core func $i "describe") (memory (core memory $i "mem"))))
  (func (export "call") (param "input" string) (result (result string (error string)))
    (canon lift (core func $i "call") (memory (core memory $i "mem")) (realloc (core func $i "realloc")))))"#;

/// Writes `<name>.wasm` (built from `wat`) and `<name>.toml` (pinning its
/// sha256, no scopes) into `dir`, the component first so a watching server
/// never sees a manifest without its component.
pub fn install(dir: &Path, name: &str, wat: &str) {
    let wasm = wat::parse_str(wat).unwrap_or_else(|e| panic!("{name}: not valid WebAssembly text: {e}"));
    let sha = hex::encode(Sha256::digest(&wasm));
    std::fs::write(dir.join(format!("{name}.wasm")), &wasm).unwrap_or_else(|e| panic!("write {name}.wasm: {e}"));
    let manifest = format!("name = \"{name}\"\nversion = \"0.1.0\"\ncomponent = \"{name}.wasm\"\nsha256 = \"{sha}\"\nscopes = []\n");
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap_or_else(|e| panic!("write {name}.toml: {e}"));
}
