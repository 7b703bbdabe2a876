//! The same build stamp as the controller library (see controller/build.rs).

include!("../controller/stamp.rs");
