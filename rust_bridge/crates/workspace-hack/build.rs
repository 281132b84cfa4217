//! No build step: the build-dependencies only unify features (see Cargo.toml).
fn main() {}
