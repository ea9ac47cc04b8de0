//! The vector quantizer: nearest code, straight-through gradient, codebook and commitment
//! losses (van den Oord et al. 2017), with EMA updates and l2-normalised codes as options.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use daam::DaamBackend;
use serde::{Deserialize, Serialize};

/// How the codebook learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CodebookUpdate {
    /// By gradient of the codebook loss `‖sg(z) − e‖²`.
    Gradient,
    /// By exponential moving averages of the assigned latents (Sonnet's `VectorQuantizerEMA`,
    /// Laplace-smoothed cluster sizes); no codebook loss.
    Ema {
        /// EMA decay (0.99 in Sonnet and rosinality).
        decay: f64,
    },
}

/// The space the nearest-code search runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeNorm {
    /// Plain Euclidean distance.
    Euclidean,
    /// Latents and codes l2-normalised first (cosine lookup; ViT-VQGAN, LlamaGen). Pair with a
    /// low `code_dim` (LlamaGen: 8).
    L2,
}

/// Configuration of a [`VectorQuantizer`].
#[derive(Config, Debug)]
pub struct VectorQuantizerConfig {
    /// Codebook size. Paper 1024.
    pub num_codes: usize,
    /// Code dimension (the latent's channels). Paper 256.
    pub code_dim: usize,
    /// Commitment weight β. Default 0.25.
    #[config(default = 0.25)]
    pub commitment: f64,
    /// How the codebook learns. Default gradient.
    #[config(default = "CodebookUpdate::Gradient")]
    pub update: CodebookUpdate,
    /// Lookup space. Default Euclidean.
    #[config(default = "CodeNorm::Euclidean")]
    pub norm: CodeNorm,
}

/// A codebook of `num_codes` vectors of `code_dim`.
#[derive(Module, Debug)]
pub struct VectorQuantizer<B: Backend> {
    /// The codes, `[num_codes, code_dim]`. Not trained by gradient under EMA updates.
    pub codebook: Param<Tensor<B, 2>>,
    /// EMA cluster sizes `[num_codes]` (never trained by gradient; unused without EMA).
    pub ema_cluster_size: Param<Tensor<B, 1>>,
    /// EMA sums of assigned latents `[num_codes, code_dim]` (never trained by gradient).
    pub ema_embed_sum: Param<Tensor<B, 2>>,
    /// Commitment weight β.
    pub commitment: f64,
    /// How the codebook learns.
    #[module(skip)]
    pub update: CodebookUpdate,
    /// Lookup space.
    #[module(skip)]
    pub norm: CodeNorm,
}

/// The output of [`VectorQuantizer::forward`].
#[derive(Debug, Clone)]
pub struct QuantizerOutput<B: Backend> {
    /// Straight-through quantized latents `z + sg(e − z)`, `[batch_size, code_dim, height, width]`.
    pub quantized: Tensor<B, 4>,
    /// Chosen codes, `[batch_size, height, width]`.
    pub indices: Tensor<B, 3, Int>,
    /// The latents the lookup saw (l2-normalised under [`CodeNorm::L2`]), detached,
    /// `[batch_size · height · width, code_dim]`: what EMA updates and dead-code restarts use.
    pub latents: Tensor<B, 2>,
    /// `β · ‖z − sg(e)‖²` (mean).
    pub commitment_loss: Tensor<B, 1>,
    /// `‖sg(z) − e‖²` (mean); zero under EMA updates.
    pub codebook_loss: Tensor<B, 1>,
}

impl VectorQuantizerConfig {
    /// Builds the quantizer with codes drawn uniformly from ±1/num_codes (Sonnet's init).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VectorQuantizer<B> {
        let (k, d) = (self.num_codes, self.code_dim);
        assert!(
            k > 0 && d > 0,
            "num_codes ({k}) and code_dim ({d}) must be positive"
        );
        let bound = 1.0 / k as f64;
        let codebook = Tensor::<B, 2>::random(
            [k, d],
            burn::tensor::Distribution::Uniform(-bound, bound),
            device,
        );
        let trainable = matches!(self.update, CodebookUpdate::Gradient);
        VectorQuantizer {
            // Sizes start at one and sums at the codes, so `sum / size` starts at the codes and
            // an unused code keeps its value as both decay (with zero sizes, Sonnet's init, it
            // would be divided by ~ε and thrown far away).
            ema_cluster_size: Param::from_tensor(Tensor::ones([k], device)).set_require_grad(false),
            ema_embed_sum: Param::from_tensor(codebook.clone()).set_require_grad(false),
            codebook: Param::from_tensor(codebook).set_require_grad(trainable),
            commitment: self.commitment,
            update: self.update,
            norm: self.norm,
        }
    }
}

/// Rows scaled to unit l2 norm (ε = 1e-12 guards zero rows).
fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

impl<B: DaamBackend> VectorQuantizer<B> {
    /// The latent as the decoder would see it without the rounding to a code (l2-normalised
    /// along the channels under [`CodeNorm::L2`], as the codes are).
    ///
    /// # Shapes
    /// - `latent`, output: `[batch_size, code_dim, height, width]`
    pub fn unquantized(&self, latent: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.norm {
            CodeNorm::Euclidean => latent,
            CodeNorm::L2 => {
                let norm = latent
                    .clone()
                    .powi_scalar(2)
                    .sum_dim(1)
                    .sqrt()
                    .clamp_min(1e-12);
                latent / norm
            }
        }
    }

    /// The codes the lookup compares against (normalised under [`CodeNorm::L2`]).
    ///
    /// # Shapes
    /// - output: `[num_codes, code_dim]`
    pub fn codes(&self) -> Tensor<B, 2> {
        let codes = self.codebook.val();
        match self.norm {
            CodeNorm::Euclidean => codes,
            CodeNorm::L2 => l2_normalize(codes),
        }
    }

    /// Nearest code of each row.
    ///
    /// # Shapes
    /// - `latents`: `[num_latents, code_dim]`
    /// - output: `[num_latents]`
    pub fn nearest(&self, latents: Tensor<B, 2>, codes: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        // ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖²; ‖z‖² is the same for every code of a row.
        let cross = latents.matmul(codes.clone().transpose()); // [num_latents, num_codes]
        let code_sq = codes.powi_scalar(2).sum_dim(1).transpose(); // [1, num_codes]
        let distances = code_sq - cross.mul_scalar(2.0);
        distances.argmin(1).flatten(0, 1)
    }

    /// Quantizes a latent map.
    ///
    /// # Shapes
    /// - `latent`: `[batch_size, code_dim, height, width]`
    ///
    /// # Panics
    /// If `code_dim` differs from the codebook's.
    pub fn forward(&self, latent: Tensor<B, 4>) -> QuantizerOutput<B> {
        let [batch_size, code_dim, height, width] = latent.dims();
        let [_, expected] = self.codebook.dims();
        assert_eq!(
            code_dim, expected,
            "VectorQuantizer: latent has {code_dim} channels, the codebook {expected}"
        );
        let flat = latent
            .permute([0, 2, 3, 1])
            .reshape([batch_size * height * width, code_dim]); // [num_latents, code_dim]
        let flat = match self.norm {
            CodeNorm::Euclidean => flat,
            CodeNorm::L2 => l2_normalize(flat),
        };
        let codes = self.codes();
        let indices = self.nearest(flat.clone().detach(), codes.clone().detach());
        // The exact lookup; its gradient (the codebook loss's, into the codes) by a one-hot
        // product on the cubecl backends, where burn's scatter-add collides (daam::lookup).
        let chosen = daam::lookup::select_rows(codes, indices.clone()); // [num_latents, code_dim]
        let commitment_loss = (flat.clone() - chosen.clone().detach())
            .powi_scalar(2)
            .mean()
            .mul_scalar(self.commitment);
        let codebook_loss = match self.update {
            CodebookUpdate::Gradient => (chosen.clone() - flat.clone().detach())
                .powi_scalar(2)
                .mean(),
            CodebookUpdate::Ema { .. } => Tensor::zeros([1], &flat.device()),
        };
        // Straight-through: the forward value is the code, the gradient flows to the latent.
        let straight_through = flat.clone() + (chosen - flat.clone()).detach();
        let quantized = straight_through
            .reshape([batch_size, height, width, code_dim])
            .permute([0, 3, 1, 2]); // [batch_size, code_dim, height, width]
        QuantizerOutput {
            quantized,
            indices: indices.reshape([batch_size, height, width]),
            latents: flat.detach(),
            commitment_loss,
            codebook_loss,
        }
    }

    /// Codes back to a latent map.
    ///
    /// # Shapes
    /// - `indices`: `[batch_size, height, width]`
    /// - output: `[batch_size, code_dim, height, width]`
    pub fn lookup(&self, indices: Tensor<B, 3, Int>) -> Tensor<B, 4> {
        let [batch_size, height, width] = indices.dims();
        let [_, code_dim] = self.codebook.dims();
        self.codes()
            .select(0, indices.flatten(0, 2))
            .reshape([batch_size, height, width, code_dim])
            .permute([0, 3, 1, 2])
    }

    /// One EMA step of the codebook (no-op under gradient updates): with counts `n_k` and sums
    /// `s_k` of the latents assigned to code `k`, `N ← γN + (1−γ)n`, `S ← γS + (1−γ)s`, and
    /// `e_k = S_k / Ñ_k` with Laplace-smoothed `Ñ_k = (N_k + ε) / (ΣN + Kε) · ΣN`, ε = 1e-5.
    ///
    /// # Shapes
    /// - `latents`: `[num_latents, code_dim]` (as in [`QuantizerOutput::latents`])
    /// - `indices`: `[num_latents]`
    pub fn ema_update(mut self, latents: Tensor<B, 2>, indices: Tensor<B, 1, Int>) -> Self {
        let CodebookUpdate::Ema { decay } = self.update else {
            return self;
        };
        let [num_codes, _] = self.codebook.dims();
        let device = latents.device();
        let [num_latents, _] = latents.dims();
        let counts = Tensor::<B, 1>::zeros([num_codes], &device).select_assign(
            0,
            indices.clone(),
            Tensor::ones([num_latents], &device),
            burn::tensor::IndexingUpdateOp::Add,
        );
        let sums = self.ema_embed_sum.val().zeros_like().select_assign(
            0,
            indices,
            latents,
            burn::tensor::IndexingUpdateOp::Add,
        );
        let size = self.ema_cluster_size.val().mul_scalar(decay) + counts.mul_scalar(1.0 - decay);
        let sum = self.ema_embed_sum.val().mul_scalar(decay) + sums.mul_scalar(1.0 - decay);
        let total = size.clone().sum();
        let eps = 1e-5;
        let smoothed = (size.clone().add_scalar(eps)
            / total.clone().add_scalar(num_codes as f64 * eps))
            * total;
        let codebook = sum.clone() / smoothed.unsqueeze_dim(1);
        self.ema_cluster_size = self.ema_cluster_size.map(|_| size.detach());
        self.ema_embed_sum = self.ema_embed_sum.map(|_| sum.detach());
        self.codebook = self.codebook.map(|_| codebook.detach());
        self
    }

    /// Replaces codes `dead` with the given latents (dead-code restart from the batch, as in
    /// SoundStream and vector-quantize-pytorch); resets their EMA state to one sample.
    ///
    /// # Shapes
    /// - `replacements`: `[dead.len(), code_dim]`
    pub fn restart_codes(mut self, dead: &[usize], replacements: Tensor<B, 2>) -> Self {
        if dead.is_empty() {
            return self;
        }
        let device = replacements.device();
        let [_, code_dim] = self.codebook.dims();
        let rows = replacements
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32");
        let replace = |t: Tensor<B, 2>, scale: f32| {
            let mut values = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
            for (i, &code) in dead.iter().enumerate() {
                for d in 0..code_dim {
                    values[code * code_dim + d] = rows[i * code_dim + d] * scale;
                }
            }
            let n = values.len() / code_dim;
            Tensor::<B, 2>::from_data(TensorData::new(values, [n, code_dim]), &device)
        };
        let mut codebook = replace(self.codebook.val(), 1.0);
        if matches!(self.update, CodebookUpdate::Gradient) {
            codebook = codebook.require_grad();
        }
        let sums = replace(self.ema_embed_sum.val(), 1.0);
        let mut sizes = self
            .ema_cluster_size
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32");
        for &code in dead {
            sizes[code] = 1.0;
        }
        let n = sizes.len();
        let sizes = Tensor::<B, 1>::from_data(TensorData::new(sizes, [n]), &device);
        self.codebook = self.codebook.map(|_| codebook);
        self.ema_embed_sum = self.ema_embed_sum.map(|_| sums);
        self.ema_cluster_size = self.ema_cluster_size.map(|_| sizes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{TestAutodiff, TestBackend};

    fn quantizer(update: CodebookUpdate, norm: CodeNorm) -> VectorQuantizer<TestBackend> {
        let mut q = VectorQuantizerConfig::new(3, 2)
            .with_update(update)
            .with_norm(norm)
            .init::<TestBackend>(&Default::default());
        let codes = Tensor::from_floats([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], &Default::default());
        q.codebook = q.codebook.map(|_| codes.clone());
        q.ema_embed_sum = q.ema_embed_sum.map(|_| codes);
        q
    }

    /// A latent map `[1, 2, 1, 3]` whose three positions are the given vectors.
    fn latent<Bk: Backend>(vectors: [[f32; 2]; 3]) -> Tensor<Bk, 4> {
        let [a, b, c] = vectors;
        Tensor::<Bk, 2>::from_floats([a, b, c], &Default::default())
            .transpose()
            .reshape([1, 2, 1, 3])
    }

    #[test]
    fn picks_the_nearest_code() {
        let q = quantizer(CodebookUpdate::Gradient, CodeNorm::Euclidean);
        let out = q.forward(latent([[0.9, 0.1], [0.1, 1.2], [-0.2, 0.1]]));
        let indices = out
            .indices
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(indices, [1, 2, 0]);
        let quantized = out.quantized.into_data().to_vec::<f32>().unwrap();
        // Channel-major [1, 2, 1, 3]: x of the three codes, then y.
        assert_eq!(quantized, [1.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn losses_are_the_squared_distance_to_the_code() {
        let q = quantizer(CodebookUpdate::Gradient, CodeNorm::Euclidean);
        let out = q.forward(latent([[0.9, 0.1], [0.1, 1.2], [-0.2, 0.1]]));
        // Squared errors: (0.01 + 0.01) + (0.01 + 0.64) + (0.04 + 0.01) = 0.72 over 6 entries.
        let mse = 0.72 / 6.0;
        let codebook: f32 = out.codebook_loss.into_scalar();
        let commitment: f32 = out.commitment_loss.into_scalar();
        assert!((f64::from(codebook) - mse).abs() < 1e-6, "{codebook}");
        assert!(
            (f64::from(commitment) - 0.25 * mse).abs() < 1e-6,
            "{commitment}"
        );
    }

    #[test]
    fn straight_through_passes_the_gradient_to_the_latent() {
        let mut q = VectorQuantizerConfig::new(3, 2).init::<TestAutodiff>(&Default::default());
        let codes = Tensor::from_floats([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], &Default::default());
        q.codebook = q.codebook.map(|_| codes.require_grad());
        let z = latent::<TestAutodiff>([[0.9, 0.1], [0.1, 1.2], [-0.2, 0.1]]).require_grad();
        let out = q.forward(z.clone());
        // d/dz of sum(quantized · w) is w exactly: the identity of the straight-through.
        let w = Tensor::<TestAutodiff, 4>::from_floats(
            [[[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]]],
            &Default::default(),
        );
        let grads = (out.quantized * w.clone()).sum().backward();
        let gz = z.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(gz, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // The codebook gets no gradient from the reconstruction path, only from its loss.
        assert!(q
            .codebook
            .grad(&grads)
            .is_none_or(|g| g.abs().sum().into_scalar() == 0.0));
    }

    /// The commitment loss moves only the latent (the encoder), toward its code; the codebook
    /// loss moves only the code, toward its latents (van den Oord et al., eq. 3).
    #[test]
    fn each_loss_moves_only_its_own_side() {
        let mut q = VectorQuantizerConfig::new(3, 2).init::<TestAutodiff>(&Default::default());
        let codes = Tensor::from_floats([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], &Default::default());
        q.codebook = q.codebook.map(|_| codes.require_grad());
        let vectors = [[0.9, 0.1], [0.1, 1.2], [-0.2, 0.1]];
        let z = latent::<TestAutodiff>(vectors).require_grad();
        let out = q.forward(z.clone());
        let zero = |g: Option<Tensor<_, 2>>| g.is_none_or(|g| g.abs().sum().into_scalar() == 0.0);

        // ∂/∂z of β·mean((z − sg[e])²) = 2β(z − e)/n with n = 6 entries; channel-major order.
        let grads = out.commitment_loss.backward();
        let gz = z
            .grad(&grads)
            .expect("the commitment loss gives the latent no gradient");
        let gz = gz.into_data().to_vec::<f32>().unwrap();
        let chosen = [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]];
        let expected: Vec<f32> = (0..2)
            .flat_map(|d| (0..3).map(move |i| 2.0 * 0.25 * (vectors[i][d] - chosen[i][d]) / 6.0))
            .collect();
        for (g, e) in gz.iter().zip(&expected) {
            assert!(
                (g - e).abs() < 1e-6,
                "commitment ∂z {gz:?}, expected {expected:?}"
            );
        }
        assert!(
            zero(q.codebook.grad(&grads)),
            "the commitment loss moved the codebook"
        );

        let out = q.forward(z.clone());
        let grads = out.codebook_loss.backward();
        assert!(
            z.grad(&grads)
                .is_none_or(|g| g.abs().sum().into_scalar() == 0.0),
            "the codebook loss moved the latent"
        );
        // ∂/∂e_k = Σ over its latents of 2(e_k − z)/n: code 1 has latent 0, code 2 latent 1.
        let ge = q
            .codebook
            .grad(&grads)
            .expect("the codebook loss gives the codes no gradient");
        let ge = ge.into_data().to_vec::<f32>().unwrap();
        let expected = [
            2.0 * (0.0 - -0.2) / 6.0,
            2.0 * (0.0 - 0.1) / 6.0,
            2.0 * (1.0 - 0.9) / 6.0,
            2.0 * (0.0 - 0.1) / 6.0,
            2.0 * (0.0 - 0.1) / 6.0,
            2.0 * (2.0 - 1.2) / 6.0,
        ];
        for (g, e) in ge.iter().zip(expected) {
            assert!(
                (g - e).abs() < 1e-6,
                "codebook ∂e {ge:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn ema_moves_codes_toward_their_latents() {
        let q = quantizer(CodebookUpdate::Ema { decay: 0.5 }, CodeNorm::Euclidean);
        let device = Default::default();
        let latents = Tensor::<TestBackend, 2>::from_floats([[1.6, 0.0], [2.0, 0.0]], &device);
        let indices = Tensor::<TestBackend, 1, Int>::from_ints([1, 1], &device);
        let q = q.ema_update(latents, indices);
        let sizes = q
            .ema_cluster_size
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(sizes, [0.5, 1.5, 0.5]); // 0.5·1 + 0.5·count
        let codes = q.codebook.val().into_data().to_vec::<f32>().unwrap();
        // S_1 = 0.5·(1, 0) + 0.5·(3.6, 0) = (2.3, 0), Ñ_1 ≈ 1.5: the code moves from 1 toward
        // the latents' mean 1.8; unused codes keep their values.
        let expected = [0.0, 0.0, 2.3 / 1.5, 0.0, 0.0, 2.0];
        for (c, e) in codes.iter().zip(expected) {
            assert!((c - e).abs() < 1e-3, "{codes:?}");
        }
    }

    #[test]
    fn l2_lookup_uses_directions() {
        let q = quantizer(CodebookUpdate::Gradient, CodeNorm::L2);
        // (5, 0.1) points along code 1 (1, 0) whatever its length.
        let out = q.forward(latent([[5.0, 0.1], [0.1, 0.3], [0.0, -3.0]]));
        let indices = out
            .indices
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(&indices[..2], [1, 2]);
    }

    #[test]
    fn unquantized_keeps_the_latent_and_normalises_it_under_l2() {
        let x = || latent([[3.0, 4.0], [0.0, -2.0], [1.0, 0.0]]);
        let plain = quantizer(CodebookUpdate::Gradient, CodeNorm::Euclidean).unquantized(x());
        assert_eq!(
            plain.into_data().to_vec::<f32>().unwrap(),
            x().into_data().to_vec::<f32>().unwrap()
        );
        let l2 = quantizer(CodebookUpdate::Gradient, CodeNorm::L2).unquantized(x());
        let got = l2.permute([0, 2, 3, 1]).reshape([3, 2]);
        let got = got.into_data().to_vec::<f32>().unwrap();
        let want = [0.6, 0.8, 0.0, -1.0, 1.0, 0.0];
        assert!(
            got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{got:?}"
        );
    }

    #[test]
    fn restart_replaces_the_named_codes() {
        let q = quantizer(CodebookUpdate::Gradient, CodeNorm::Euclidean);
        let device = Default::default();
        let q = q.restart_codes(
            &[0, 2],
            Tensor::from_floats([[7.0, 7.0], [8.0, 8.0]], &device),
        );
        let codes = q.codebook.val().into_data().to_vec::<f32>().unwrap();
        assert_eq!(codes, [7.0, 7.0, 1.0, 0.0, 8.0, 8.0]);
    }

    #[test]
    fn lookup_inverts_forward() {
        let q = quantizer(CodebookUpdate::Gradient, CodeNorm::Euclidean);
        let out = q.forward(latent([[0.9, 0.1], [0.1, 1.2], [-0.2, 0.1]]));
        let back = q.lookup(out.indices).into_data();
        assert_eq!(back, out.quantized.into_data());
    }
}
