//! Stamps the build (of `guardian-controller` and of `guardian-cli`, whose
//! `build.rs` includes this file) with a hash of the sources the `guardian` binary is made
//! of, so the integration harness can tell a binary built from this tree
//! from a stale one left in a shared target dir (`guardian --version` and
//! `guardian_controller::BUILD_STAMP` must agree).

include!("stamp.rs");
