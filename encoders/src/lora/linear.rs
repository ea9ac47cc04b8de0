//! A linear projection with an optional LoRA adapter: `W x + b + s · B(A x)`.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;
use burn::tensor::Tensor;

/// The trainable low-rank pair of one adapted projection (peft's `lora_A` / `lora_B`, stored
/// input-major like burn's `Linear`).
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `A`, the down-projection `[d_input, rank]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// `B`, the up-projection `[rank, d_output]`; zero when initialised. LoRA+ trains it at
    /// `λ` times the learning rate of `A` ([`crate::lora::split_grads`]).
    pub lora_b: Param<Tensor<B, 2>>,
    /// `s`, the factor of the adapter output (`α / r` or `α`, see
    /// [`crate::lora::LoraScaling`]).
    pub scale: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// `s · (x A) B`.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]`
    /// - output: `[..., d_output]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let down = linear(x, self.lora_a.val(), None); // [..., rank]
        linear(down, self.lora_b.val(), None).mul_scalar(self.scale) // [..., d_output]
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[1]
    }

    /// The number of adapter parameters, `r · (d_input + d_output)`.
    pub fn num_params(&self) -> usize {
        let [d_input, rank] = self.lora_a.dims();
        let [_, d_output] = self.lora_b.dims();
        rank * (d_input + d_output)
    }
}

/// A pre-trained projection with an optional adapter. Without one it computes exactly the
/// wrapped `Linear`.
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    /// The pre-trained projection `W` (`weight` `[d_input, d_output]`) and its bias; frozen by
    /// [`crate::lora::LoraAdaptable::with_lora`].
    pub base: Linear<B>,
    /// The adapter, when this projection is adapted.
    pub adapter: Option<LoraAdapter<B>>,
}

impl<B: Backend> From<Linear<B>> for LoraLinear<B> {
    fn from(base: Linear<B>) -> Self {
        Self {
            base,
            adapter: None,
        }
    }
}

impl<B: Backend> LoraLinear<B> {
    /// `W x + b`, plus `s · B(A x)` when adapted.
    ///
    /// # Shapes
    /// - `x`: `[..., d_input]`
    /// - output: `[..., d_output]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        // `kernels::linear` is `self.base.forward` as one `gemm` call on Flex.
        match &self.adapter {
            None => crate::kernels::linear(&self.base, x),
            Some(adapter) => crate::kernels::linear(&self.base, x.clone()) + adapter.forward(x),
        }
    }

    /// The input and output widths `[d_input, d_output]`.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.dims()
    }

    /// This projection with `adapter` (replacing any previous one).
    ///
    /// # Panics
    /// When the adapter's widths differ from the projection's.
    pub fn with_adapter(self, adapter: LoraAdapter<B>) -> Self {
        let [d_input, d_output] = self.dims();
        let [a_input, _] = adapter.lora_a.dims();
        let [_, b_output] = adapter.lora_b.dims();
        assert_eq!(
            [a_input, b_output],
            [d_input, d_output],
            "LoRA adapter widths [d_input, d_output] {:?} differ from the projection's {:?}",
            [a_input, b_output],
            [d_input, d_output]
        );
        Self {
            base: self.base,
            adapter: Some(adapter),
        }
    }

    /// This projection without an adapter.
    pub fn without_adapter(self) -> Self {
        Self {
            base: self.base,
            adapter: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::LoraConfig;
    use crate::seeded_init::SeededInit;
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    type B = burn::backend::Flex;

    fn adapted(d_input: usize, d_output: usize, rank: usize) -> LoraLinear<B> {
        let device = Default::default();
        let base = LinearConfig::new(d_input, d_output).init::<B>(&device);
        let adapter =
            LoraConfig::new(rank).init_adapter(d_input, d_output, &mut SeededInit::new(5), &device);
        LoraLinear::from(base).with_adapter(adapter)
    }

    #[test]
    fn b_zero_gives_exactly_the_base_projection() {
        let layer = adapted(7, 5, 3);
        let x = Tensor::<B, 3>::random([2, 3, 7], Distribution::Normal(0.0, 1.0), &x_device());
        layer
            .forward(x.clone())
            .into_data()
            .assert_eq(&layer.base.forward(x).into_data(), true);
    }

    #[test]
    fn a_nonzero_b_adds_the_scaled_low_rank_product() {
        let device = x_device();
        let mut layer = adapted(7, 5, 3);
        let adapter = layer.adapter.as_mut().expect("adapter");
        adapter.lora_b = Param::from_tensor(Tensor::random(
            [3, 5],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        let adapter = layer.adapter.as_ref().expect("adapter");
        let x = Tensor::<B, 2>::random([4, 7], Distribution::Normal(0.0, 1.0), &device);
        // W' = W + s·A·B: the merged weight gives the same output.
        let merged = layer.base.weight.val()
            + adapter
                .lora_a
                .val()
                .matmul(adapter.lora_b.val())
                .mul_scalar(adapter.scale);
        let bias = layer.base.bias.as_ref().expect("bias").val().unsqueeze();
        let expected = x.clone().matmul(merged) + bias;
        layer
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        let change: f32 = (layer.forward(x.clone()) - layer.base.forward(x))
            .abs()
            .max()
            .into_scalar();
        assert!(change > 1e-3, "{change}");
    }

    #[test]
    fn adapter_counts_rank_times_widths() {
        let layer = adapted(7, 5, 3);
        assert_eq!(layer.adapter.expect("adapter").num_params(), 3 * (7 + 5));
    }

    #[test]
    #[should_panic = "LoRA adapter widths [d_input, d_output] [7, 5] differ from the projection's [5, 7]"]
    fn a_misshapen_adapter_is_rejected() {
        let device = x_device();
        let adapter: LoraAdapter<B> =
            LoraConfig::new(2).init_adapter(7, 5, &mut SeededInit::new(0), &device);
        LoraLinear::from(LinearConfig::new(5, 7).init::<B>(&device)).with_adapter(adapter);
    }

    fn x_device() -> burn::tensor::Device<B> {
        Default::default()
    }
}
