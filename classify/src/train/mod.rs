//! Training heads: losses, settings, precision, one run.

mod loss;
mod precision;
mod run;
mod settings;

pub use loss::{cross_entropy_per_sample, LossKind};
pub use precision::{
    cast_params, unscale_gradients, LossScaler, MixedPrecision, Precision, ScaleCollapsed,
};
pub use run::{
    accuracy, batch_tensors, load_head, predict, read_metrics, save_head, train_run, Accuracy,
    EpochRecord, HeadRecorder, RunData, RunFiles, RunObserver, Silent, METRICS_HEADER,
};
pub(crate) use run::{check_outputs_finite, non_finite_rows};
pub use settings::{Protocol, Task, TrainSettings};
