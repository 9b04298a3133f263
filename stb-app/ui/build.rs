//! Compiles the screens into Rust.
fn main() {
    if let Err(e) = slint_build::compile("app.slint") {
        panic!("compiling app.slint: {e}");
    }
}
