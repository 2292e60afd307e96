//! Host bindings for the `omniroute:tool` world. Kept in their own module:
//! the generated `Tool`/`ToolPre` would clash with `rmcp::model::Tool`.

wasmtime::component::bindgen!({
    path: "../tools-wit/wit",
    world: "tool",
    imports: { default: async },
    exports: { default: async },
});

pub use omniroute::tool::{gateway, progress, session, state};
