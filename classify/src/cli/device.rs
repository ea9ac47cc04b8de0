//! `--device` and backend dispatch: shared with the other binaries in `daam::device`.

pub use daam::device::Device;
pub(crate) use daam::{dispatch, dispatch_autodiff};
