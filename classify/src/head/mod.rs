//! DAT heads: the paper's decoder with each attention module it compares.

mod batch_norm;
mod dat;
mod layer_attention;
mod param_count;
mod self_attention;

pub use batch_norm::batch_norm;
pub use dat::{grid_for, DatHead, DatHeadConfig, HeadOutput};
pub use layer_attention::{
    init_layer_attention, HeadKind, LayerAttention, MhaBn, ProjectedGqa, GQA_KV_HEADS,
    GQA_QUERY_HEADS, GQA_WIDTH, MHA_HEADS,
};
pub use param_count::{authors_counts, AuthorsCount, Counted, ParamCount, GQA_DIFFERENCE};
pub use self_attention::mha_self_attention;
