//! cubek's implicit-GEMM convolution (the kernels burn-cubecl's tuned convolution picks among)
//! for [`ComposedConv::Implicit`] on the fused cubecl backends (CUDA, wgpu): the three
//! primitives [`crate::conv_implicit`] composes every convolution from, a forward with any
//! stride ([`DaamBackend::implicit_conv2d`]), a stride-1 backward
//! ([`DaamBackend::implicit_conv2d_backward`]) and a weight gradient with any stride
//! ([`DaamBackend::implicit_conv2d_weight_grad`]).
//!
//! burn's `conv2d` on those backends runs `ConvStrategy::default()`: a direct convolution without
//! cubecl's `autotune`, a tuned choice (minutes of tuning on a fresh machine) with it.
//! burn-cubecl 0.21 also has `ConvStrategy::ImplicitGemm`, a tensor-core matrix product that
//! reads the input's windows in place, without writing the unfolded input that
//! [`crate::conv_gemm`]'s route writes and reads (`kh · kw` times the input: 9.7 GB per 3×3
//! convolution of the `paper` VQ-VAE at 256², session 20's profile) and without a tuning search.
//! burn's API does not reach it, and a fused backend's tensors are fusion handles, so each call
//! here is one custom fusion op whose execution runs the kernel on the inner `CubeBackend`.
//!
//! The kernels are launched here through cubek (burn-cubecl's own launch functions are
//! private), so the algorithm can be chosen: `DAAM_IMPLICIT=ALGORITHM:TILE` ([`kernels`] lists
//! them; default `simple_sync_cyclic:cmma`, what burn's `ConvStrategy::ImplicitGemm` runs), or
//! [`set_kernel`] between calls (the `conv_routes` bench times each).
//!
//! Where the kernel does not take the inputs (no tensor cores, as lavapipe; shapes it rejects;
//! the TMA algorithms' data gradient), or panics while setting the launch up, the op computes
//! the matrix-product route on the inner backend instead, warns once on stderr and counts it
//! ([`fallbacks`]).
//!
//! [`ComposedConv::Implicit`]: crate::conv_gemm::ComposedConv::Implicit
//! [`DaamBackend::implicit_conv2d`]: crate::DaamBackend::implicit_conv2d
//! [`DaamBackend::implicit_conv2d_backward`]: crate::DaamBackend::implicit_conv2d_backward
//! [`DaamBackend::implicit_conv2d_weight_grad`]: crate::DaamBackend::implicit_conv2d_weight_grad

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::prelude::TensorBinding;
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::ops::{permute_nchw_to_nhwc, permute_nhwc_to_nchw};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubek::convolution::components::ConvSetupError;
use cubek::convolution::{
    launch_ref, AcceleratedTileKind, ConvAlgorithm, ConvolutionArgs, ConvolutionInputs, Strategy,
};
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::std::InputBinding;

use crate::conv_gemm::{conv2d_gemm, conv2d_gemm_weight_grad, conv_transpose2d_gemm};

/// The environment variable that picks the implicit-GEMM kernel: `ALGORITHM:TILE`.
pub const KERNEL_ENV: &str = "DAAM_IMPLICIT";

const ALGORITHMS: [ConvAlgorithm; 9] = [
    ConvAlgorithm::SimpleSyncCyclic,
    ConvAlgorithm::SimpleSyncStrided,
    ConvAlgorithm::SimpleSyncTilewise,
    ConvAlgorithm::SimpleAsyncCyclic,
    ConvAlgorithm::SimpleAsyncStrided,
    ConvAlgorithm::SimpleAsyncTma,
    ConvAlgorithm::SpecializedAsyncCyclic,
    ConvAlgorithm::SpecializedAsyncStrided,
    ConvAlgorithm::SpecializedTma,
];
const TILES: [(&str, AcceleratedTileKind); 2] = [
    ("cmma", AcceleratedTileKind::Cmma),
    ("mma", AcceleratedTileKind::Mma),
];

/// One implicit-GEMM kernel: cubek's convolution algorithm and its tile matrix product.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    algorithm: ConvAlgorithm,
    tile: AcceleratedTileKind,
}

impl Kernel {
    /// burn's `ConvStrategy::ImplicitGemm`.
    const DEFAULT: Self = Self {
        algorithm: ConvAlgorithm::SimpleSyncCyclic,
        tile: AcceleratedTileKind::Cmma,
    };

    fn name(self) -> String {
        let tile = TILES
            .iter()
            .find(|(_, tile)| std::mem::discriminant(tile) == std::mem::discriminant(&self.tile))
            .map_or("?", |(name, _)| name);
        format!("{}:{tile}", self.algorithm)
    }

    fn parse(name: &str) -> Option<Self> {
        let (algorithm, tile) = name.trim().split_once(':')?;
        let algorithm = *ALGORITHMS
            .iter()
            .find(|a| a.to_string().eq_ignore_ascii_case(algorithm.trim()))?;
        let tile = TILES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(tile.trim()))?
            .1;
        Some(Self { algorithm, tile })
    }

    fn strategy(self) -> Strategy {
        Strategy::Inferred {
            algorithm: self.algorithm,
            tile_kind: self.tile,
        }
    }
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// The kernel new calls take: the last [`set_kernel`], else `DAAM_IMPLICIT`, else the default
/// (a value naming none is warned about once).
fn kernel() -> Kernel {
    let mut kernel = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    *kernel.get_or_insert_with(|| match std::env::var(KERNEL_ENV) {
        Err(_) => Kernel::DEFAULT,
        Ok(value) => Kernel::parse(&value).unwrap_or_else(|| {
            eprintln!(
                "{KERNEL_ENV}={value:?} is none of {}: using {}",
                kernels().join(", "),
                Kernel::DEFAULT.name()
            );
            Kernel::DEFAULT
        }),
    })
}

/// Every kernel name `DAAM_IMPLICIT` and [`set_kernel`] take (`ALGORITHM:TILE`).
pub fn kernels() -> Vec<String> {
    ALGORITHMS
        .iter()
        .flat_map(|&algorithm| {
            TILES
                .iter()
                .map(move |&(_, tile)| Kernel { algorithm, tile }.name())
        })
        .collect()
}

/// The name of the kernel new implicit-GEMM calls take.
pub fn kernel_name() -> String {
    kernel().name()
}

/// Makes later implicit-GEMM calls take the kernel `name` (one of [`kernels`]).
///
/// # Errors
/// If `name` is none of them.
pub fn set_kernel(name: &str) -> Result<(), String> {
    let parsed = Kernel::parse(name)
        .ok_or_else(|| format!("`{name}` is none of {}", kernels().join(", ")))?;
    *KERNEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(parsed);
    Ok(())
}

static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// How many implicit-GEMM kernel launches (forward, data gradient, weight gradient) this
/// process ran as matrix products instead, because the kernel did not take the inputs.
pub fn fallbacks() -> usize {
    FALLBACKS.load(Ordering::Relaxed)
}

/// Counts a fallback and warns about the first one.
fn fall_back(kernel: Kernel, what: &str, x: &Shape, weight: &Shape, err: &Refused) {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "DAAM_CONV=implicit: the implicit-GEMM kernel {} did not take the {what} of a \
             convolution of {x:?} by {weight:?} ({err}); such calls run as matrix products",
            kernel.name()
        )
    });
}

type Inner<R, F, I, BT> = CubeBackend<R, F, I, BT>;
type Handles<R> = HandleContainer<<FusionCubeRuntime<R> as FusionRuntime>::FusionHandle>;

/// Why a kernel did not run: cubek refused the problem, or panicked while setting it up.
#[derive(Debug)]
enum Refused {
    /// cubek's own error (no tile for the problem, an algorithm without this pass, ...).
    Setup(ConvSetupError),
    /// A panic's message: caught, so that the call falls back instead of ending the program.
    Panic(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Setup(err) => write!(f, "{err:?}"),
            Self::Panic(message) => write!(f, "it panicked: {message}"),
        }
    }
}

fn args(stride: [usize; 2], padding: [usize; 2]) -> ConvolutionArgs<2> {
    ConvolutionArgs {
        stride,
        padding,
        dilation: [1, 1],
    }
}

fn binding<R: CubeRuntime>(tensor: CubeTensor<R>) -> InputBinding<R> {
    let dtype = tensor.dtype;
    InputBinding::new(tensor.binding(), dtype.into())
}

/// `[a, b, c, d]` (NCHW) as `[a, c, d, b]` (NHWC).
fn nhwc(shape: &Shape) -> Shape {
    let [n, c, h, w] = shape.dims::<4>();
    Shape::new([n, h, w, c])
}

/// Runs `kernel` on the NCHW operands `[lhs, rhs]` (one dtype) into a new NCHW tensor of
/// `out_shape`, with `[stride, padding]`; the kernel reads and writes them as NHWC views (cubek
/// copies a view it cannot read as it is). `inputs` names the pass: cubek's inputs from the
/// operands' bindings and the output's. A panic while cubek sets the launch up is caught as
/// [`Refused::Panic`].
fn launch<R: CubeRuntime>(
    kernel: Kernel,
    [lhs, rhs]: [CubeTensor<R>; 2],
    out_shape: &Shape,
    [stride, padding]: [[usize; 2]; 2],
    inputs: impl FnOnce(InputBinding<R>, InputBinding<R>, TensorBinding<R>) -> ConvolutionInputs<R>,
) -> Result<CubeTensor<R>, Refused> {
    let client = lhs.client.clone();
    let out = empty_device_dtype(
        client.clone(),
        lhs.device.clone(),
        nhwc(out_shape),
        lhs.dtype,
    );
    let dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: lhs.dtype.into(),
        rhs: rhs.dtype.into(),
        out: lhs.dtype.into(),
    });
    let inputs = inputs(
        binding(permute_nchw_to_nhwc(lhs)),
        binding(permute_nchw_to_nhwc(rhs)),
        out.clone().binding(),
    );
    let launched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        launch_ref::<R, 2>(
            &kernel.strategy(),
            &client,
            inputs,
            args(stride, padding),
            dtypes,
        )
    }));
    match launched {
        Ok(Ok(())) => Ok(permute_nhwc_to_nchw(out)),
        Ok(Err(err)) => Err(Refused::Setup(err)),
        Err(panic) => Err(Refused::Panic(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()),
        )),
    }
}

fn tensor<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    primitive: CubeTensor<R>,
) -> Tensor<Inner<R, F, I, BT>, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn primitive<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    tensor: Tensor<Inner<R, F, I, BT>, 4>,
) -> CubeTensor<R> {
    tensor.into_primitive().tensor()
}

/// The forward's fusion op: inputs `[x, weight]` or `[x, weight, bias]`, output `[y]`.
#[derive(Debug)]
struct ForwardOp<R, F, I, BT> {
    desc: CustomOpIr,
    kernel: Kernel,
    stride: [usize; 2],
    padding: [usize; 2],
    _backend: PhantomData<(R, F, I, BT)>,
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>
    Operation<FusionCubeRuntime<R>> for ForwardOp<R, F, I, BT>
{
    fn execute(&self, handles: &mut Handles<R>) {
        type B<R, F, I, BT> = Inner<R, F, I, BT>;
        let (x_ir, weight_ir, bias_ir) = match self.desc.inputs.as_slice() {
            [x, weight] => (x, weight, None),
            [x, weight, bias] => (x, weight, Some(bias)),
            inputs => unreachable!("{} inputs to the implicit forward", inputs.len()),
        };
        let [out_ir] = self.desc.outputs.as_slice() else {
            unreachable!("one output of the implicit forward")
        };
        let x = handles.get_float_tensor::<B<R, F, I, BT>>(x_ir);
        let weight = handles.get_float_tensor::<B<R, F, I, BT>>(weight_ir);
        let bias = bias_ir.map(|ir| handles.get_float_tensor::<B<R, F, I, BT>>(ir));
        let output = launch(
            self.kernel,
            [x.clone(), weight.clone()],
            &out_ir.shape,
            [self.stride, self.padding],
            |input, weight, out| ConvolutionInputs::Forward {
                input,
                weight,
                bias: bias.clone().map(binding),
                out,
            },
        )
        .unwrap_or_else(|err| {
            fall_back(self.kernel, "forward", &x_ir.shape, &weight_ir.shape, &err);
            primitive(conv2d_gemm(
                tensor::<R, F, I, BT>(x),
                tensor(weight),
                bias.map(|bias| Tensor::from_primitive(TensorPrimitive::Float(bias))),
                self.stride,
                self.padding,
            ))
        });
        handles.register_float_tensor::<B<R, F, I, BT>>(&out_ir.id, output);
    }
}

/// The weight gradient `[out, in, kh, kw]` of a convolution of `x` with `[stride, padding]`
/// by `kernel`, or by the matrix products where the kernel does not take it.
fn weight_grad<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    kernel: Kernel,
    [x, grad_out]: [CubeTensor<R>; 2],
    [x_shape, grad_weight_shape]: [&Shape; 2],
    [stride, padding]: [[usize; 2]; 2],
) -> CubeTensor<R> {
    launch(
        kernel,
        [x.clone(), grad_out.clone()],
        grad_weight_shape,
        [stride, padding],
        |input, out_grad, weight_grad| ConvolutionInputs::BackwardWeight {
            input,
            out_grad,
            weight_grad,
        },
    )
    .unwrap_or_else(|err| {
        fall_back(kernel, "weight gradient", x_shape, grad_weight_shape, &err);
        let [_, _, kernel_h, kernel_w] = grad_weight_shape.dims::<4>();
        primitive(conv2d_gemm_weight_grad(
            tensor::<R, F, I, BT>(x),
            tensor(grad_out),
            [kernel_h, kernel_w],
            stride,
            padding,
        ))
    })
}

/// A stride-1 convolution's backward fusion op: inputs `[x, weight, grad_out]`, outputs
/// `[grad_x, grad_weight]`.
#[derive(Debug)]
struct BackwardOp<R, F, I, BT> {
    desc: CustomOpIr,
    kernel: Kernel,
    padding: [usize; 2],
    _backend: PhantomData<(R, F, I, BT)>,
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>
    Operation<FusionCubeRuntime<R>> for BackwardOp<R, F, I, BT>
{
    fn execute(&self, handles: &mut Handles<R>) {
        type B<R, F, I, BT> = Inner<R, F, I, BT>;
        let ([x_ir, weight_ir, grad_ir], [grad_x_ir, grad_weight_ir]) =
            self.desc.as_fixed::<3, 2>();
        let x = handles.get_float_tensor::<B<R, F, I, BT>>(x_ir);
        let weight = handles.get_float_tensor::<B<R, F, I, BT>>(weight_ir);
        let grad_out = handles.get_float_tensor::<B<R, F, I, BT>>(grad_ir);
        let grad_x = launch(
            self.kernel,
            [grad_out.clone(), weight.clone()],
            &x_ir.shape,
            [[1, 1], self.padding],
            |out_grad, weights, in_grad| ConvolutionInputs::BackwardData {
                out_grad,
                weights,
                in_grad,
            },
        );
        // Each gradient the kernel does not take by the matrix products alone (the TMA
        // algorithms have no data gradient).
        let grad_x = grad_x.unwrap_or_else(|err| {
            fall_back(
                self.kernel,
                "data gradient",
                &x_ir.shape,
                &weight_ir.shape,
                &err,
            );
            primitive(conv_transpose2d_gemm(
                tensor::<R, F, I, BT>(grad_out.clone()),
                tensor(weight),
                None,
                [1, 1],
                self.padding,
                [0, 0],
            ))
        });
        let grad_weight = weight_grad::<R, F, I, BT>(
            self.kernel,
            [x, grad_out],
            [&x_ir.shape, &weight_ir.shape],
            [[1, 1], self.padding],
        );
        handles.register_float_tensor::<B<R, F, I, BT>>(&grad_x_ir.id, grad_x);
        handles.register_float_tensor::<B<R, F, I, BT>>(&grad_weight_ir.id, grad_weight);
    }
}

/// The weight gradient's fusion op (any stride): inputs `[x, grad_out]`, output
/// `[grad_weight]`.
#[derive(Debug)]
struct WeightGradOp<R, F, I, BT> {
    desc: CustomOpIr,
    kernel: Kernel,
    stride: [usize; 2],
    padding: [usize; 2],
    _backend: PhantomData<(R, F, I, BT)>,
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>
    Operation<FusionCubeRuntime<R>> for WeightGradOp<R, F, I, BT>
{
    fn execute(&self, handles: &mut Handles<R>) {
        type B<R, F, I, BT> = Inner<R, F, I, BT>;
        let ([x_ir, grad_ir], [grad_weight_ir]) = self.desc.as_fixed::<2, 1>();
        let x = handles.get_float_tensor::<B<R, F, I, BT>>(x_ir);
        let grad_out = handles.get_float_tensor::<B<R, F, I, BT>>(grad_ir);
        let grad_weight = weight_grad::<R, F, I, BT>(
            self.kernel,
            [x, grad_out],
            [&x_ir.shape, &grad_weight_ir.shape],
            [self.stride, self.padding],
        );
        handles.register_float_tensor::<B<R, F, I, BT>>(&grad_weight_ir.id, grad_weight);
    }
}

/// [`DaamBackend::implicit_conv2d`](crate::DaamBackend::implicit_conv2d) and its gradients on a
/// fused cubecl backend.
pub(super) trait FusedCube: burn::tensor::backend::Backend {
    /// As [`DaamBackend::implicit_conv2d`](crate::DaamBackend::implicit_conv2d).
    fn conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;

    /// As [`DaamBackend::implicit_conv2d_backward`](crate::DaamBackend::implicit_conv2d_backward).
    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        padding: [usize; 2],
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// As [`DaamBackend::implicit_conv2d_weight_grad`](crate::DaamBackend::implicit_conv2d_weight_grad).
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FusedCube
    for Fusion<Inner<R, F, I, BT>>
{
    fn conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        let [batch_size, _, height, width] = x.shape.dims::<4>();
        let [out_channels, _, kernel_h, kernel_w] = weight.shape.dims::<4>();
        let out_shape = Shape::new([
            batch_size,
            out_channels,
            (height + 2 * padding[0] - kernel_h) / stride[0] + 1,
            (width + 2 * padding[1] - kernel_w) / stride[1] + 1,
        ]);
        let client = x.client.clone();
        let out = TensorIr::uninit(client.create_empty_handle(), out_shape, x.dtype);
        let mut streams = OperationStreams::with_inputs([&x, &weight]);
        let mut inputs = vec![x.into_ir(), weight.into_ir()];
        if let Some(bias) = bias {
            streams.tensor(&bias);
            inputs.push(bias.into_ir());
        }
        let desc = CustomOpIr::new("daam_implicit_conv2d", &inputs, &[out]);
        let op = ForwardOp::<R, F, I, BT> {
            desc: desc.clone(),
            kernel: kernel(),
            stride,
            padding,
            _backend: PhantomData,
        };
        let [output] = <[_; 1]>::try_from(client.register(streams, OperationIr::Custom(desc), op))
            .expect("one output");
        output
    }

    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        padding: [usize; 2],
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let client = x.client.clone();
        let grad_x = TensorIr::uninit(client.create_empty_handle(), x.shape.clone(), x.dtype);
        let grad_weight = TensorIr::uninit(
            client.create_empty_handle(),
            weight.shape.clone(),
            weight.dtype,
        );
        let streams = OperationStreams::with_inputs([&x, &weight, &grad_out]);
        let desc = CustomOpIr::new(
            "daam_implicit_conv2d_backward",
            &[x.into_ir(), weight.into_ir(), grad_out.into_ir()],
            &[grad_x, grad_weight],
        );
        let op = BackwardOp::<R, F, I, BT> {
            desc: desc.clone(),
            kernel: kernel(),
            padding,
            _backend: PhantomData,
        };
        let [grad_x, grad_weight] =
            <[_; 2]>::try_from(client.register(streams, OperationIr::Custom(desc), op))
                .expect("two outputs");
        (grad_x, grad_weight)
    }

    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
        [kernel_h, kernel_w]: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        let client = x.client.clone();
        let shape = Shape::new([grad_out.shape[1], x.shape[1], kernel_h, kernel_w]);
        let grad_weight = TensorIr::uninit(client.create_empty_handle(), shape, x.dtype);
        let streams = OperationStreams::with_inputs([&x, &grad_out]);
        let desc = CustomOpIr::new(
            "daam_implicit_conv2d_weight_grad",
            &[x.into_ir(), grad_out.into_ir()],
            &[grad_weight],
        );
        let op = WeightGradOp::<R, F, I, BT> {
            desc: desc.clone(),
            kernel: kernel(),
            stride,
            padding,
            _backend: PhantomData,
        };
        let [grad_weight] =
            <[_; 1]>::try_from(client.register(streams, OperationIr::Custom(desc), op))
                .expect("one output");
        grad_weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel name parses back to itself (any case, spaces trimmed); other names do not.
    #[test]
    fn kernel_names_round_trip() {
        let names = kernels();
        assert_eq!(names.len(), ALGORITHMS.len() * TILES.len());
        assert_eq!(names[0], "simple_sync_cyclic:cmma");
        for name in &names {
            let parsed = Kernel::parse(&format!(" {} ", name.to_uppercase()));
            assert_eq!(parsed.map(Kernel::name).as_ref(), Some(name));
        }
        for bad in [
            "simple_sync_cyclic",
            "simple_sync_cyclic:wmma",
            "fast:cmma",
            "",
        ] {
            assert!(Kernel::parse(bad).is_none(), "{bad:?} parsed");
        }
        assert!(set_kernel("fast:cmma")
            .unwrap_err()
            .contains("simple_async_tma:mma"));
    }
}
