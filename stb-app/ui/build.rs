//! Compiles the screens into Rust.
fn main() {
    // The fonts (fonts/*.ttf, imported by app.slint) and any image go into the binary as
    // files: the box needs no font installed. This is slint-build's default; said here so
    // that SLINT_EMBED_RESOURCES in the environment cannot turn it off.
    let config = slint_build::CompilerConfiguration::new()
        .embed_resources(slint_build::EmbedResourcesKind::EmbedFiles);
    if let Err(e) = slint_build::compile_with_config("app.slint", config) {
        panic!("compiling app.slint: {e}");
    }
}
