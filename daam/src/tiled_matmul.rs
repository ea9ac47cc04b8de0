//! Matrix products by a chosen cubek tiled-matmul strategy on the fused cubecl backends (CUDA,
//! wgpu): `DAAM_MATMUL=NAME` ([`strategies`] lists them), for inference (the op has no backward).
//!
//! burn-cubecl built without cubecl's `autotune` runs every product with cubek's `Auto`
//! strategy, the simple cyclic tile loader (`simple_cyclic_cmma`); with autotune it times
//! candidates per shape (minutes on a fresh machine) and picked TMA loaders for plain operands
//! in GPU session 20, 1.6× faster over a `paper` step's products. On an H100 (session 18) the
//! frozen encoders' forward, mostly products, ran at 0.54–0.64× transformers in f32 and
//! Llama-2-13B at 0.15× in f16 (~53 TFLOPS against cuBLAS's ~365). [`matmul`] runs one product
//! as a custom fusion op launching cubek with the named strategy; where the strategy does not
//! take the problem, burn's own product runs in the same op, counted ([`fallbacks`]) and warned
//! about once. With `DAAM_MATMUL` unset, on other backends (Flex, and `Autodiff` of any: the op
//! has no backward), and for mixed dtypes, [`matmul`] is burn's `matmul`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use cube::{fallbacks, set_strategy, strategies, strategy_name};

/// The environment variable naming the strategy ([`strategies`]); unset: burn's products.
pub const STRATEGY_ENV: &str = "DAAM_MATMUL";

/// `lhs · rhs` (batched over leading axes, broadcast as burn's `matmul`) by the chosen strategy
/// where one is chosen and `B` is a fused cubecl backend; burn's `matmul` otherwise.
///
/// # Shapes
/// - `lhs`: `[..., m, k]`; `rhs`: `[..., k, n]`
/// - output: `[..., m, n]`
pub fn matmul<B: Backend, const D: usize>(lhs: Tensor<B, D>, rhs: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if let Some(strategy) = cube::chosen() {
        return match cube::try_matmul(lhs, rhs, strategy) {
            Ok(product) => product,
            Err((lhs, rhs)) => lhs.matmul(rhs),
        };
    }
    lhs.matmul(rhs)
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube {
    use std::any::{Any, TypeId};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, Once};

    use burn::tensor::backend::Backend;
    use burn::tensor::{Shape, Tensor, TensorPrimitive};
    use burn_cubecl::fusion::FusionCubeRuntime;
    use burn_cubecl::kernel::matmul::{init_matmul_output, matmul as burn_matmul, MatmulStrategy};
    use burn_cubecl::{CubeBackend, CubeRuntime};
    use burn_fusion::stream::{Operation, OperationStreams};
    use burn_fusion::{FusionRuntime, FusionTensor};
    use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
    use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
    use cubek::matmul::launch::{launch_ref, Strategy};
    use cubek::std::InputBinding;

    use super::STRATEGY_ENV;

    /// Builds a cubek strategy.
    type Make = fn() -> Strategy;

    /// The strategies `DAAM_MATMUL` takes: cubek's tiled matmuls (tile loader, buffering,
    /// tensor-core instruction).
    const STRATEGIES: [(&str, Make); 16] = [
        ("simple_cyclic_cmma", || {
            Strategy::SimpleCyclicCmma(Default::default())
        }),
        ("simple_cyclic_mma", || {
            Strategy::SimpleCyclicMma(Default::default())
        }),
        ("simple_tma_cmma", || {
            Strategy::SimpleTmaCmma(Default::default())
        }),
        ("simple_tma_mma", || {
            Strategy::SimpleTmaMma(Default::default())
        }),
        ("double_cyclic_cmma", || {
            Strategy::DoubleCyclicCmma(Default::default())
        }),
        ("double_cyclic_mma", || {
            Strategy::DoubleCyclicMma(Default::default())
        }),
        ("double_tma_cmma", || {
            Strategy::DoubleTmaCmma(Default::default())
        }),
        ("double_tma_mma", || {
            Strategy::DoubleTmaMma(Default::default())
        }),
        ("double_async_cyclic_cmma", || {
            Strategy::DoubleAsyncCyclicCmma(Default::default())
        }),
        ("double_async_cyclic_mma", || {
            Strategy::DoubleAsyncCyclicMma(Default::default())
        }),
        ("specialized_cyclic_cmma", || {
            Strategy::SpecializedCyclicCmma(Default::default())
        }),
        ("specialized_cyclic_mma", || {
            Strategy::SpecializedCyclicMma(Default::default())
        }),
        ("specialized_tma_cmma", || {
            Strategy::SpecializedTmaCmma(Default::default())
        }),
        ("specialized_tma_mma", || {
            Strategy::SpecializedTmaMma(Default::default())
        }),
        ("ordered_double_cmma", || {
            Strategy::OrderedDoubleCmma(Default::default())
        }),
        ("ordered_double_mma", || {
            Strategy::OrderedDoubleMma(Default::default())
        }),
    ];

    /// `None` until read; then `Some(None)` (burn's products) or `Some(Some(index))`.
    static CHOSEN: Mutex<Option<Option<usize>>> = Mutex::new(None);

    fn index(name: &str) -> Option<usize> {
        STRATEGIES
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
    }

    /// The chosen strategy's index: the last [`set_strategy`], else `DAAM_MATMUL` (a value
    /// naming none is warned about once and ignored), else none.
    pub(super) fn chosen() -> Option<usize> {
        let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
        *chosen.get_or_insert_with(|| {
            let value = std::env::var(STRATEGY_ENV).ok()?;
            let found = index(&value);
            if found.is_none() {
                eprintln!(
                    "{STRATEGY_ENV}={value:?} is none of {}: using burn's matrix products",
                    strategies().join(", ")
                );
            }
            found
        })
    }

    /// Every name `DAAM_MATMUL` and [`set_strategy`] take.
    pub fn strategies() -> Vec<&'static str> {
        STRATEGIES.iter().map(|(name, _)| *name).collect()
    }

    /// The chosen strategy's name; `None` when burn's products run.
    pub fn strategy_name() -> Option<&'static str> {
        chosen().map(|i| STRATEGIES[i].0)
    }

    /// Makes later [`super::matmul`] calls take the strategy `name` (one of [`strategies`]),
    /// or burn's products for `None`.
    ///
    /// # Errors
    /// If `name` is none of them.
    pub fn set_strategy(name: Option<&str>) -> Result<(), String> {
        let parsed = match name {
            None => None,
            Some(name) => Some(
                index(name)
                    .ok_or_else(|| format!("`{name}` is none of {}", strategies().join(", ")))?,
            ),
        };
        *CHOSEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(parsed);
        Ok(())
    }

    static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

    /// How many products this process ran as burn's own because the chosen strategy did not
    /// take them.
    pub fn fallbacks() -> usize {
        FALLBACKS.load(Ordering::Relaxed)
    }

    type Handles<R> = HandleContainer<<FusionCubeRuntime<R> as FusionRuntime>::FusionHandle>;
    /// Any inner backend of the runtime: the handles hold `CubeTensor<R>` whatever the element
    /// types.
    type Inner<R> = CubeBackend<R, f32, i32, u8>;

    /// The product's fusion op: inputs `[lhs, rhs]`, output `[out]`.
    #[derive(Debug)]
    struct MatmulOp<R> {
        desc: CustomOpIr,
        strategy: usize,
        _runtime: std::marker::PhantomData<R>,
    }

    impl<R: CubeRuntime> Operation<FusionCubeRuntime<R>> for MatmulOp<R> {
        fn execute(&self, handles: &mut Handles<R>) {
            let ([lhs_ir, rhs_ir], [out_ir]) = self.desc.as_fixed::<2, 1>();
            let lhs = handles.get_float_tensor::<Inner<R>>(lhs_ir);
            let rhs = handles.get_float_tensor::<Inner<R>>(rhs_ir);
            let out = init_matmul_output(&lhs, &rhs, lhs.dtype);
            let client = out.client.clone();
            let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
                lhs: lhs.dtype.into(),
                rhs: rhs.dtype.into(),
                out: out.dtype.into(),
            });
            let (name, strategy) = STRATEGIES[self.strategy];
            let inputs = (
                InputBinding::new(lhs.clone().binding(), lhs.dtype.into()),
                InputBinding::new(rhs.clone().binding(), rhs.dtype.into()),
            );
            let launched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                launch_ref(
                    &strategy(),
                    &client,
                    inputs.0,
                    inputs.1,
                    out.clone().binding(),
                    &mut dtypes,
                )
                .map_err(|err| format!("{err:?}"))
            }))
            .unwrap_or_else(|panic| {
                Err(panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into()))
            });
            let out = match launched {
                Ok(()) => out,
                Err(reason) => {
                    FALLBACKS.fetch_add(1, Ordering::Relaxed);
                    static WARNED: Once = Once::new();
                    WARNED.call_once(|| {
                        eprintln!(
                            "{STRATEGY_ENV}={name}: the strategy did not take a product of \
                             {:?} by {:?} ({reason}); such products run as burn's",
                            lhs_ir.shape, rhs_ir.shape
                        )
                    });
                    let dtype = lhs.dtype;
                    burn_matmul(lhs, rhs, None, MatmulStrategy::default(), dtype)
                        .expect("burn's matrix product")
                }
            };
            handles.register_float_tensor::<Inner<R>>(&out_ir.id, out);
        }
    }

    /// The product's shape: leading axes broadcast, `[m, k] · [k, n] → [m, n]`.
    fn product_shape(lhs: &Shape, rhs: &Shape) -> Shape {
        let d = lhs.num_dims();
        let mut dims: Vec<usize> = (0..d - 2).map(|i| lhs[i].max(rhs[i])).collect();
        dims.extend([lhs[d - 2], rhs[d - 1]]);
        Shape::from(dims)
    }

    fn register<R: CubeRuntime>(
        lhs: FusionTensor<FusionCubeRuntime<R>>,
        rhs: FusionTensor<FusionCubeRuntime<R>>,
        strategy: usize,
    ) -> FusionTensor<FusionCubeRuntime<R>> {
        let client = lhs.client.clone();
        let shape = product_shape(&lhs.shape, &rhs.shape);
        let out = TensorIr::uninit(client.create_empty_handle(), shape, lhs.dtype);
        let streams = OperationStreams::with_inputs([&lhs, &rhs]);
        let desc = CustomOpIr::new("daam_tiled_matmul", &[lhs.into_ir(), rhs.into_ir()], &[out]);
        let op = MatmulOp::<R> {
            desc: desc.clone(),
            strategy,
            _runtime: std::marker::PhantomData,
        };
        let [out] = <[_; 1]>::try_from(client.register(streams, OperationIr::Custom(desc), op))
            .expect("one output");
        out
    }

    /// The product by `strategy` as a fusion op when `B`'s float primitive is the fused tensor
    /// of runtime `R` and the operands share a dtype; the operands back otherwise.
    fn on_runtime<B: Backend, R: CubeRuntime, const D: usize>(
        lhs: Tensor<B, D>,
        rhs: Tensor<B, D>,
        strategy: usize,
    ) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
        type Primitive<R> = FusionTensor<FusionCubeRuntime<R>>;
        if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<Primitive<R>>() {
            return Err((lhs, rhs));
        }
        let down = |t: Tensor<B, D>| -> Primitive<R> {
            let boxed: Box<dyn Any> = Box::new(t.into_primitive().tensor());
            *boxed.downcast().expect("the type was checked")
        };
        let (lhs, rhs) = (down(lhs), down(rhs));
        if lhs.dtype != rhs.dtype {
            let up = |t: Primitive<R>| -> Tensor<B, D> {
                let boxed: Box<dyn Any> = Box::new(t);
                let primitive = *boxed
                    .downcast::<B::FloatTensorPrimitive>()
                    .expect("the type was checked");
                Tensor::from_primitive(TensorPrimitive::Float(primitive))
            };
            return Err((up(lhs), up(rhs)));
        }
        let boxed: Box<dyn Any> = Box::new(register::<R>(lhs, rhs, strategy));
        let primitive = *boxed
            .downcast::<B::FloatTensorPrimitive>()
            .expect("the type was checked");
        Ok(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
    }

    /// The product by `strategy` when `B` is a fused CUDA or wgpu backend; the operands back
    /// otherwise (and for mixed dtypes).
    #[allow(clippy::type_complexity)]
    pub(super) fn try_matmul<B: Backend, const D: usize>(
        lhs: Tensor<B, D>,
        rhs: Tensor<B, D>,
        strategy: usize,
    ) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
        #[cfg(feature = "cuda")]
        let (lhs, rhs) =
            match on_runtime::<B, burn_cubecl::cubecl::cuda::CudaRuntime, D>(lhs, rhs, strategy) {
                Ok(product) => return Ok(product),
                Err(operands) => operands,
            };
        #[cfg(feature = "wgpu")]
        let (lhs, rhs) =
            match on_runtime::<B, burn_cubecl::cubecl::wgpu::WgpuRuntime, D>(lhs, rhs, strategy) {
                Ok(product) => return Ok(product),
                Err(operands) => operands,
            };
        Err((lhs, rhs))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Every name parses back (any case, spaces trimmed); other names are refused.
        #[test]
        fn strategy_names_round_trip() {
            for (i, name) in strategies().iter().enumerate() {
                assert_eq!(index(&format!(" {} ", name.to_uppercase())), Some(i));
            }
            assert_eq!(index("fast"), None);
            assert!(set_strategy(Some("fast"))
                .unwrap_err()
                .contains("specialized_tma_cmma"));
        }

        #[test]
        fn broadcast_product_shape() {
            let shape = product_shape(&Shape::new([4, 1, 3, 5]), &Shape::new([1, 2, 5, 7]));
            assert_eq!(shape, Shape::new([4, 2, 3, 7]));
        }
    }
}
