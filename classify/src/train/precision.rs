//! Mixed-precision training of the heads.
//!
//! The weights stay `f32` (the optimizer's master copy, what `model.bin` holds); a step casts
//! the convolutions' and the classifier's weights and activations to `bf16` or `f16` for the
//! forward and backward, where nearly all of a DAT head's arithmetic is, and keeps the
//! attention over layers (Gaussian densities, softmax), the logits and the loss in `f32`, as
//! PyTorch's autocast keeps normalisations, softmax and losses in `f32`. The casts are tracked
//! ops, so the gradients reaching the master weights are `f32`.
//!
//! `f16` has too few exponent bits for small gradients: its steps multiply the loss by a
//! dynamic scale ([`LossScaler`], PyTorch's `GradScaler` defaults) and divide the gradients by
//! it before the optimizer; a step whose gradients overflow is skipped and the scale halved.
//! `bf16` has `f32`'s exponent range and needs no scale.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// Precision of a head's training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in `f32`.
    #[default]
    F32,
    /// Convolutions and classifier in `bfloat16` (no loss scale).
    Bf16,
    /// Convolutions and classifier in `float16`, with a dynamic loss scale.
    F16,
}

impl Precision {
    /// Every precision, in command-line order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The precision named `name` (`f32`, `bf16`, `f16`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The dtype of the half-precision part of a step; `None` for `f32`.
    pub fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(FloatDType::BF16),
            Precision::F16 => Some(FloatDType::F16),
        }
    }
}

/// A copy of `module` whose float parameters are cast to `dtype`, still tracked: gradients
/// flow back to `module`'s parameters (in their own dtype).
pub fn cast_params<B: Backend, M: Module<B>>(module: &M, dtype: FloatDType) -> M {
    // A clone of a lazily initialised parameter initialises on its own, to other values and
    // another autodiff node: initialise `module`'s own parameters first.
    struct Initialise;
    impl<B: Backend> ModuleVisitor<B> for Initialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Initialise);
    struct Cast(FloatDType);
    impl<B: Backend> ModuleMapper<B> for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor.cast(self.0), mapper)
        }
    }
    module.clone().map(&mut Cast(dtype))
}

/// Why a mixed-precision step could not go on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleCollapsed {
    /// The scale the last overflow left.
    pub scale: f32,
    /// Steps in a row whose gradients overflowed.
    pub overflows: usize,
}

/// PyTorch's `GradScaler` with its defaults: the scale starts at 2¹⁶, doubles after 2,000
/// steps in a row with finite gradients and halves on a step whose gradients are not (that
/// step is skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f32,
    good_steps: usize,
    overflows: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl LossScaler {
    /// The first scale.
    pub const INITIAL: f32 = 65_536.0;
    /// Finite steps in a row before the scale doubles.
    pub const GROWTH_INTERVAL: usize = 2000;
    /// Below this scale the gradients overflow whatever the scale: the forward itself does
    /// not fit `f16`.
    pub const MIN: f32 = 1.0;

    /// A scaler at [`Self::INITIAL`].
    pub fn new() -> Self {
        Self {
            scale: Self::INITIAL,
            good_steps: 0,
            overflows: 0,
        }
    }

    /// The current scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Records whether a step's gradients were finite.
    ///
    /// # Errors
    /// [`ScaleCollapsed`] when an overflow takes the scale below [`Self::MIN`].
    pub fn update(&mut self, finite: bool) -> Result<(), ScaleCollapsed> {
        if finite {
            self.overflows = 0;
            self.good_steps += 1;
            if self.good_steps == Self::GROWTH_INTERVAL {
                self.scale = (self.scale * 2.0).min(f32::MAX / 2.0);
                self.good_steps = 0;
            }
            return Ok(());
        }
        self.good_steps = 0;
        self.overflows += 1;
        self.scale *= 0.5;
        if self.scale < Self::MIN {
            return Err(ScaleCollapsed {
                scale: self.scale,
                overflows: self.overflows,
            });
        }
        Ok(())
    }
}

/// Divides every gradient of `model`'s parameters in `grads` by `scale`, and says whether all
/// of them are finite (one read from the device).
pub fn unscale_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    scale: f32,
) -> bool {
    struct Unscale<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        inverse: f32,
        total: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Unscale<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
                return;
            };
            let grad = grad.mul_scalar(self.inverse);
            // A sum propagates every NaN and infinity (a max may skip NaN).
            let magnitude = grad.clone().abs().sum().cast(FloatDType::F32);
            self.total = Some(match self.total.take() {
                Some(total) => total + magnitude,
                None => magnitude,
            });
            self.grads.register(param.id, grad);
        }
    }
    let mut visitor = Unscale::<B> {
        grads,
        inverse: 1.0 / scale,
        total: None,
    };
    model.visit(&mut visitor);
    visitor
        .total
        .map(|t| t.into_scalar().elem::<f32>().is_finite())
        .unwrap_or(true)
}

/// Turns a step's loss into the gradients of `model`'s parameters in the chosen precision:
/// plain backward for `f32` and `bf16`, scaled and unscaled for `f16`.
#[derive(Debug, Clone)]
pub struct MixedPrecision {
    scaler: Option<LossScaler>,
    skipped: usize,
}

impl MixedPrecision {
    /// For steps in `precision`.
    pub fn new(precision: Precision) -> Self {
        Self {
            scaler: (precision == Precision::F16).then(LossScaler::new),
            skipped: 0,
        }
    }

    /// Steps skipped so far because their gradients overflowed (`f16`).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The current loss scale (`f16`), `None` otherwise.
    pub fn scale(&self) -> Option<f32> {
        self.scaler.as_ref().map(LossScaler::scale)
    }

    /// The gradients of `loss` for `model`'s parameters, or `None` when the step must be
    /// skipped (its `f16` gradients overflowed; the scale is halved).
    ///
    /// # Errors
    /// [`ScaleCollapsed`] when overflows took the scale below [`LossScaler::MIN`].
    ///
    /// # Shapes
    /// - `loss`: `[1]`
    pub fn gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
        &mut self,
        model: &M,
        loss: Tensor<B, 1>,
    ) -> Result<Option<GradientsParams>, ScaleCollapsed> {
        let Some(scaler) = self.scaler.as_mut() else {
            return Ok(Some(GradientsParams::from_grads(loss.backward(), model)));
        };
        let scale = scaler.scale();
        let mut grads = GradientsParams::from_grads(loss.mul_scalar(scale).backward(), model);
        let finite = unscale_gradients(model, &mut grads, scale);
        scaler.update(finite)?;
        if finite {
            Ok(Some(grads))
        } else {
            self.skipped += 1;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::backend::Autodiff;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{DType, TensorData};

    type Ad = Autodiff<TestBackend>;

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
        assert_eq!(Precision::from_name("f64"), None);
        assert_eq!(Precision::default(), Precision::F32);
    }

    #[test]
    fn scaler_halves_on_overflow_and_grows_after_the_interval() {
        let mut s = LossScaler::new();
        s.update(false).unwrap();
        assert_eq!(s.scale(), LossScaler::INITIAL / 2.0);
        for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
            s.update(true).unwrap();
        }
        assert_eq!(s.scale(), LossScaler::INITIAL / 2.0);
        s.update(true).unwrap();
        assert_eq!(s.scale(), LossScaler::INITIAL);
        // An overflow restarts the count.
        s.update(false).unwrap();
        s.update(true).unwrap();
        assert_eq!(s.scale(), LossScaler::INITIAL / 2.0);
    }

    #[test]
    fn scaler_collapses_below_one() {
        let mut s = LossScaler::new();
        for _ in 0..16 {
            s.update(false).unwrap();
        }
        assert_eq!(s.scale(), 1.0);
        let err = s.update(false).unwrap_err();
        assert_eq!(err.overflows, 17);
        assert_eq!(err.scale, 0.5);
    }

    #[test]
    fn cast_params_is_tracked_back_to_the_f32_weights() {
        let device = Default::default();
        let linear: Linear<Ad> = LinearConfig::new(3, 2).init(&device);
        let half = cast_params(&linear, FloatDType::BF16);
        assert_eq!(half.weight.val().dtype(), DType::BF16);
        assert_eq!(half.weight.id, linear.weight.id);
        let x =
            Tensor::<Ad, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, -1.0], [1, 3]), &device)
                .cast(FloatDType::BF16);
        let loss = half.forward(x).cast(FloatDType::F32).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &linear);
        let g = grads
            .get::<TestBackend, 2>(linear.weight.id)
            .expect("the f32 weight has a gradient");
        assert_eq!(g.dtype(), DType::F32);
        // d(sum(xW + b))/dW[i][j] = x[i]: exact in bf16 for these values.
        let values = g.into_data().to_vec::<f32>().unwrap();
        assert_eq!(values, vec![1.0, 1.0, 2.0, 2.0, -1.0, -1.0]);
    }

    #[test]
    fn f16_gradients_equal_the_unscaled_ones_and_overflow_skips() {
        let device = Default::default();
        let linear: Linear<Ad> = LinearConfig::new(3, 2).init(&device);
        let x =
            Tensor::<Ad, 2>::from_data(TensorData::new(vec![0.5f32, 0.25, -1.0], [1, 3]), &device);
        let plain =
            GradientsParams::from_grads(linear.forward(x.clone()).sum().backward(), &linear)
                .get::<TestBackend, 2>(linear.weight.id)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
        let mut amp = MixedPrecision::new(Precision::F16);
        let grads = amp
            .gradients(&linear, linear.forward(x.clone()).sum())
            .unwrap()
            .expect("finite gradients");
        let scaled = grads
            .get::<TestBackend, 2>(linear.weight.id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for (a, b) in plain.iter().zip(&scaled) {
            assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
        }
        // A loss whose scaled gradient is infinite: skipped, scale halved.
        let huge = linear.forward(x).sum().mul_scalar(f32::MAX);
        assert!(amp.gradients(&linear, huge).unwrap().is_none());
        assert_eq!(amp.skipped(), 1);
        assert_eq!(amp.scale(), Some(LossScaler::INITIAL / 2.0));
    }
}
