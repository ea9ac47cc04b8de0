//! The attention module a DAT head applies over the layer axis of an embedding matrix: the
//! paper's DAAM variants and its attention baselines (paper §1.3, Table 2;
//! `reference/daam-reference.md` §1-5).

use burn::module::Module;
use burn::nn::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use daam::{
    linear_rows, DaamBackend, DensityAdaptiveAttention, DensityAdaptiveAttentionConfig,
    DensityBlock, DensityBlockConfig, GqDaam, GqDaamConfig, GroupedQueryAttention,
    GroupedQueryAttentionConfig, MixtureDensityAttentionConfig,
};
use serde::{Deserialize, Serialize};

use super::batch_norm::batch_norm;
use super::self_attention::mha_self_attention;

/// Which attention a head puts in front of its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Per-feature DAAM with 8 heads on the layer axis (paper "DAAMv1", Alg. 1).
    DaamV1,
    /// Per-feature DAAM with 1 head (paper "DAAMv2").
    DaamV2,
    /// Mixture of DAAM: a one-layer `DensityBlock` on the layer axis, 8 heads × 4 Gaussians
    /// (paper App. B, Table 3: 64 parameters).
    Mixture,
    /// GQDAAM: DAAM (8 heads) → Linear(d_model → 512) → GQA (q 8, kv 2) (paper §1.3).
    GqDaam,
    /// Multi-head self-attention over the layer axis (8 heads, d_model wide). The authors' code
    /// attended across the batch by accident; this attends across layers, as intended.
    Mha,
    /// MHA followed by BatchNorm over the layer channels (the authors' `MHA_BN`, made to run).
    MhaBn,
    /// Grouped-query attention alone: Linear(d_model → 512) → GQA (q 8, kv 2).
    Gqa,
}

impl HeadKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [HeadKind; 7] = [
        HeadKind::DaamV1,
        HeadKind::DaamV2,
        HeadKind::Mixture,
        HeadKind::GqDaam,
        HeadKind::Mha,
        HeadKind::MhaBn,
        HeadKind::Gqa,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::DaamV1 => "daam-v1",
            HeadKind::DaamV2 => "daam-v2",
            HeadKind::Mixture => "mixture",
            HeadKind::GqDaam => "gq-daam",
            HeadKind::Mha => "mha",
            HeadKind::MhaBn => "mha-bn",
            HeadKind::Gqa => "gqa",
        }
    }

    /// Parses [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the module records density weights an Importance Factor can be built from.
    pub fn has_density_weights(self) -> bool {
        matches!(self, HeadKind::DaamV1 | HeadKind::DaamV2 | HeadKind::GqDaam)
    }

    /// Whether the module can run on `num_layers × d_model` embeddings; the reason when not
    /// (what [`init_layer_attention`] and the forward pass would otherwise panic on).
    pub fn fits(self, num_layers: usize, d_model: usize) -> Result<(), String> {
        match self {
            HeadKind::DaamV1 | HeadKind::GqDaam if !num_layers.is_multiple_of(8) => Err(format!(
                "{} splits the layers into 8 heads: {num_layers} layers are not divisible by 8",
                self.name()
            )),
            HeadKind::Mixture if num_layers < 8 => Err(format!(
                "mixture has 8 heads over the layers: {num_layers} layers are fewer"
            )),
            HeadKind::Mha | HeadKind::MhaBn if !d_model.is_multiple_of(MHA_HEADS) => Err(format!(
                "{} has {MHA_HEADS} heads over the features: d_model {d_model} is not \
                 divisible by {MHA_HEADS}",
                self.name()
            )),
            _ => Ok(()),
        }
    }

    /// Width of the module's output per layer: `d_model`, or the projection width for the
    /// grouped-query kinds.
    pub fn output_width(self, d_model: usize) -> usize {
        match self {
            HeadKind::GqDaam | HeadKind::Gqa => GQA_WIDTH,
            _ => d_model,
        }
    }
}

/// Width the grouped-query kinds project to before their attention (authors: 512).
pub const GQA_WIDTH: usize = 512;
/// Query heads of the grouped-query kinds (paper Table 1: q 8).
pub const GQA_QUERY_HEADS: usize = 8;
/// Key/value heads of the grouped-query kinds (paper Table 1: kv 2).
pub const GQA_KV_HEADS: usize = 2;
/// Heads of the MHA baselines (authors' `nn.MultiheadAttention(d, 8)`).
pub const MHA_HEADS: usize = 8;

/// The attention module of a DAT head, one variant per [`HeadKind`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum LayerAttention<B: Backend> {
    /// DAAMv1 / DAAMv2.
    Daam(DensityAdaptiveAttention<B>),
    /// Mixture of DAAM.
    Mixture(DensityBlock<B>),
    /// GQDAAM.
    GqDaam(GqDaam<B>),
    /// MHA.
    Mha(MultiHeadAttention<B>),
    /// MHA → BatchNorm over layers.
    MhaBn(MhaBn<B>),
    /// Linear → GQA.
    Gqa(ProjectedGqa<B>),
}

/// MHA over the layer axis, then BatchNorm with the layers as channels.
#[derive(Module, Debug)]
pub struct MhaBn<B: Backend> {
    /// Self-attention across layers.
    pub mha: MultiHeadAttention<B>,
    /// BatchNorm over `[batch_size, num_layers, d_model]` with `num_layers` channels.
    pub norm: BatchNorm<B>,
}

/// `Linear(d_model → 512)` then grouped-query self-attention across layers.
#[derive(Module, Debug)]
pub struct ProjectedGqa<B: Backend> {
    /// `d_model → 512`.
    pub embed: burn::nn::Linear<B>,
    /// GQA at width 512.
    pub gqa: GroupedQueryAttention<B>,
}

/// Builds the attention of `kind` for embeddings of `num_layers × d_model`.
///
/// # Panics
/// If the layer count is not divisible by the DAAM heads of `DaamV1`/`GqDaam` (8) or is below
/// the mixture's 8 heads.
pub fn init_layer_attention<B: Backend>(
    kind: HeadKind,
    num_layers: usize,
    d_model: usize,
    device: &B::Device,
) -> LayerAttention<B> {
    let daam = |num_heads: usize| {
        assert!(
            num_layers.is_multiple_of(num_heads),
            "{}: {num_layers} layers are not divisible by {num_heads} DAAM heads",
            kind.name()
        );
        DensityAdaptiveAttentionConfig::new(d_model).with_num_heads(num_heads)
    };
    let mha = || {
        MultiHeadAttentionConfig::new(d_model, MHA_HEADS)
            .with_dropout(0.0)
            .with_initializer(Initializer::XavierUniform { gain: 1.0 })
            .init(device)
    };
    match kind {
        HeadKind::DaamV1 => LayerAttention::Daam(daam(8).init(device)),
        HeadKind::DaamV2 => LayerAttention::Daam(daam(1).init(device)),
        HeadKind::Mixture => {
            assert!(
                num_layers >= 8,
                "mixture: {num_layers} layers are fewer than its 8 heads"
            );
            let layer = MixtureDensityAttentionConfig::new(1)
                .with_num_heads(8)
                .with_num_gaussians(4);
            LayerAttention::Mixture(DensityBlockConfig::repeated(layer, 1).init(device))
        }
        HeadKind::GqDaam => LayerAttention::GqDaam(
            GqDaamConfig::new(daam(8))
                .with_d_embed(GQA_WIDTH)
                .with_num_heads(GQA_QUERY_HEADS)
                .with_num_kv_heads(GQA_KV_HEADS)
                .init(device),
        ),
        HeadKind::Mha => LayerAttention::Mha(mha()),
        HeadKind::MhaBn => LayerAttention::MhaBn(MhaBn {
            mha: mha(),
            norm: BatchNormConfig::new(num_layers).init(device),
        }),
        HeadKind::Gqa => LayerAttention::Gqa(ProjectedGqa {
            embed: burn::nn::LinearConfig::new(d_model, GQA_WIDTH).init(device),
            gqa: GroupedQueryAttentionConfig::new(GQA_WIDTH)
                .with_num_heads(GQA_QUERY_HEADS)
                .with_num_kv_heads(GQA_KV_HEADS)
                .init(device),
        }),
    }
}

impl<B: DaamBackend> LayerAttention<B> {
    /// Applies the attention; returns the output and, for the DAAM kinds, the density weights
    /// `w` (for the Importance Factor).
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_layers, d_model]`
    /// - output: `[batch_size, num_layers, width]` (`width` is [`HeadKind::output_width`])
    /// - weights: `[batch_size, num_layers, d_model]`
    pub fn forward_with_weights(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, Option<Tensor<B, 3>>) {
        match self {
            LayerAttention::Daam(daam) => {
                let out = daam.forward_with_weights(x);
                (out.output, Some(out.weights))
            }
            LayerAttention::Mixture(block) => (block.forward(x), None),
            LayerAttention::GqDaam(gq) => {
                let out = gq.daam.forward_with_weights(x);
                let embedded = linear_rows(&gq.embed, out.output); // [batch_size, num_layers, 512]
                (gq.gqa.forward(embedded), Some(out.weights))
            }
            LayerAttention::Mha(mha) => (mha_self_attention(mha, x), None),
            LayerAttention::MhaBn(m) => {
                let attended = mha_self_attention(&m.mha, x);
                (batch_norm(&m.norm, attended), None)
            }
            LayerAttention::Gqa(p) => (p.gqa.forward(linear_rows(&p.embed, x)), None),
        }
    }

    /// [`Self::forward_with_weights`] without the weights.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_layers, d_model]`
    /// - output: `[batch_size, num_layers, width]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            LayerAttention::Daam(daam) => daam.forward(x),
            LayerAttention::GqDaam(gq) => gq.forward(x),
            _ => self.forward_with_weights(x).0,
        }
    }
}
