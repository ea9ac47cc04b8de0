//! `x·W + b` for a burn [`Linear`] on `[..., d_input]`: on Flex one `gemm` call over all leading
//! axes with the bias written first and accumulated into (burn's `Linear` on a 3-D input runs one
//! multiply per batch entry against a broadcast weight, then a separate bias pass).

use burn::backend::flex::FlexTensor;
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::gemm::{matmul, worth_parallel, MatMut, MatRef};
use super::{flex_tensor, from_flex, into_flex, into_flex_optional, values};

/// The weight `[d_input, d_output]` as a strided matrix view, or `None` for negative strides.
fn weight_view(weight: &FlexTensor) -> Option<MatRef<'_>> {
    let shape = weight.layout().shape();
    let strides = weight.layout().strides();
    let rs = usize::try_from(strides[0]).ok()?;
    let cs = usize::try_from(strides[1]).ok()?;
    Some(MatRef::new(
        weight.storage::<f32>(),
        weight.layout().start_offset(),
        [shape[0], shape[1]],
        [rs, cs],
    ))
}

/// `x·W + b` of `x` `[rows, d_input]` (row-major) into a fresh row-major `[rows, d_output]`.
///
/// # Panics
/// When `x` does not hold `rows · d_input` values or the bias is not `d_output` long.
pub fn linear_rows(x: &[f32], rows: usize, weight: MatRef<'_>, bias: Option<&[f32]>) -> Vec<f32> {
    let (d_input, d_output) = (weight.rows(), weight.cols());
    assert_eq!(
        x.len(),
        rows * d_input,
        "linear: input holds {} values, expected {rows}·{d_input}",
        x.len()
    );
    let mut out = match bias {
        Some(b) => {
            assert_eq!(
                b.len(),
                d_output,
                "linear: bias of {} for d_output {d_output}",
                b.len()
            );
            b.repeat(rows)
        }
        None => vec![0.0; rows * d_output],
    };
    matmul(
        MatMut::row_major(&mut out, rows, d_output),
        bias.is_some(),
        MatRef::row_major(x, rows, d_input),
        weight,
        1.0,
        worth_parallel(rows, d_input, d_output),
    );
    out
}

/// `layer.forward(x)`: through one `gemm` call on Flex; elsewhere (CUDA, wgpu, `Autodiff`, Flex
/// with its kernels off or in half precision) as one product of all of `x`'s rows
/// ([`daam::tiled_matmul::matmul`]: burn's product, or on a fused cubecl backend the
/// `DAAM_MATMUL` strategy) and the bias. burn's `Linear` instead multiplies each batch entry by
/// the broadcast weight: on the CPU 1.18× slower for WavLM-Large's products (bench
/// `matmul_routes`), and under `Autodiff` its weight gradient is one product per batch entry.
///
/// # Shapes
/// - `x`: `[..., d_input]`
/// - output: `[..., d_output]`
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let flex_x = match into_flex(x) {
        Ok(flex_x) => flex_x,
        Err(x) => return linear_tiled(layer, x),
    };
    let weight = into_flex(layer.weight.val());
    let bias = into_flex_optional(layer.bias.as_ref().map(Param::val));
    let (Ok(weight), Some(bias)) = (weight, bias) else {
        return layer.forward(from_flex(flex_x));
    };
    let Some(w) = weight_view(&weight) else {
        return layer.forward(from_flex(flex_x));
    };
    let mut shape = flex_x.layout().shape().to_vec();
    let d_input = shape[D - 1];
    assert_eq!(
        d_input,
        w.rows(),
        "linear: input width {d_input} differs from the weight's d_input {}",
        w.rows()
    );
    let rows = shape[..D - 1].iter().product();
    let bias_values = bias.as_ref().map(values);
    let out = linear_rows(&values(&flex_x), rows, w, bias_values.as_deref());
    shape[D - 1] = w.cols();
    from_flex(flex_tensor(out, &shape))
}

/// `layer.forward(x)` as one product of all of `x`'s rows ([`daam::tiled_matmul::matmul`]),
/// then the bias.
fn linear_tiled<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let mut shape = x.dims();
    let d_input = shape[D - 1];
    let rows = shape[..D - 1].iter().product();
    let weight = layer.weight.val(); // [d_input, d_output]
    let d_output = weight.dims()[1];
    let product = daam::tiled_matmul::matmul(x.reshape([rows, d_input]), weight);
    let product = match &layer.bias {
        Some(bias) => product + bias.val().unsqueeze::<2>(),
        None => product,
    };
    shape[D - 1] = d_output;
    product.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::LinearConfig;
    use burn::tensor::Tolerance;

    /// The all-rows product (the route off Flex's kernels; on Flex its product is burn's) with
    /// and without bias, on 2-D and 3-D inputs, is burn's `Linear`, and under `Autodiff` so are
    /// its gradients.
    #[test]
    fn tiled_route_matches_burns_linear() {
        let device = Default::default();
        for bias in [true, false] {
            let layer = LinearConfig::new(7, 4)
                .with_bias(bias)
                .init::<Flex>(&device);
            let x = crate::kernels::test_tensor([3, 5, 7], 5);
            linear_tiled(&layer, x.clone())
                .into_data()
                .assert_approx_eq::<f32>(
                    &layer.forward(x.clone()).into_data(),
                    Tolerance::absolute(1e-5),
                );
            let x = x.reshape([15, 7]);
            linear_tiled(&layer, x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&layer.forward(x).into_data(), Tolerance::absolute(1e-5));
        }
        type A = burn::backend::Autodiff<Flex>;
        let layer = LinearConfig::new(7, 4).init::<A>(&device);
        let x =
            Tensor::<A, 3>::from_inner(crate::kernels::test_tensor([3, 5, 7], 6)).require_grad();
        let probe = Tensor::<A, 3>::from_inner(crate::kernels::test_tensor([3, 5, 4], 7));
        let grads_of = |y: Tensor<A, 3>| (y * probe.clone()).sum().backward();
        let ours = grads_of(linear(&layer, x.clone()));
        let reference = grads_of(layer.forward(x.clone()));
        let bias = layer.bias.as_ref().expect("a bias");
        for (a, b) in [
            (x.grad(&ours), x.grad(&reference)),
            (
                layer.weight.grad(&ours).map(|g| g.reshape([1, 4, 7])),
                layer.weight.grad(&reference).map(|g| g.reshape([1, 4, 7])),
            ),
        ] {
            let (a, b) = (a.expect("tracked"), b.expect("tracked"));
            a.into_data()
                .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-5));
        }
        bias.grad(&ours)
            .expect("tracked")
            .into_data()
            .assert_approx_eq::<f32>(
                &bias.grad(&reference).expect("tracked").into_data(),
                Tolerance::absolute(1e-5),
            );
    }

    #[test]
    fn matches_burns_linear_with_and_without_bias_and_with_a_transposed_weight() {
        let device = Default::default();
        let x = crate::kernels::test_tensor([3, 5, 7], 3);
        for bias in [true, false] {
            let mut layer = LinearConfig::new(7, 4)
                .with_bias(bias)
                .init::<Flex>(&device);
            let expected = layer.forward(x.clone()).into_data();
            linear(&layer, x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-5));
            // As loaded from a Hugging Face checkpoint: `[d_output, d_input]` transposed.
            let stored =
                Tensor::<Flex, 2>::from_data(layer.weight.val().transpose().into_data(), &device);
            layer.weight = burn::module::Param::from_tensor(stored.transpose());
            linear(&layer, x.clone().swap_dims(0, 1))
                .swap_dims(0, 1)
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-5));
        }
    }
}
