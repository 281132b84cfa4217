//! No code: this crate's dependencies exist to unify features (see Cargo.toml).
