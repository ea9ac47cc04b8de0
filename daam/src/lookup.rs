//! Rows of a small table picked by index (`table.select(0, indices)`, a VQ-VAE's codebook
//! lookup) whose gradient is taken by a one-hot matrix product where a scatter-add is slow.
//!
//! burn differentiates `select` by adding each picked row's gradient back into the table: on a
//! GPU, tens of thousands of rows land on a thousand addresses, and the atomics collide. In GPU
//! session 20 that one kernel took 11 ms of a `paper` step (32,768 latents into 1,024 codes).
//! `one_hot(indices)ᵀ · grad` is the same sum as one matrix product (17 GFLOP there). The value
//! stays the exact lookup: the product enters as `p − detach(p)`, zero in value, with its
//! gradient.
//!
//! `DAAM_LOOKUP=product|scatter` picks the gradient on any backend; by default the product on
//! the cubecl backends ([`DaamBackend::lookup_grad_by_product`]) and burn's scatter elsewhere.

use burn::tensor::{Int, Tensor};

use crate::DaamBackend;

/// The environment variable that picks the lookup's gradient: `product` or `scatter`.
pub const LOOKUP_ENV: &str = "DAAM_LOOKUP";

const CHOICES: [(&str, bool); 2] = [("product", true), ("scatter", false)];

/// `DAAM_LOOKUP` as read once: `Some(true)` for `product`, `Some(false)` for `scatter`, `None`
/// when unset (a value naming neither is warned about and ignored).
pub(crate) fn lookup_from_env() -> Option<bool> {
    static CHOICE: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        let value = std::env::var(LOOKUP_ENV).ok()?;
        let parsed = crate::env_choice::parse(Some(&value), &CHOICES);
        if parsed.is_none() {
            eprintln!("{LOOKUP_ENV}={value:?} is none of product, scatter: using the backend's");
        }
        parsed
    })
}

/// `table.select(0, indices)`, differentiated by a one-hot product where
/// [`DaamBackend::lookup_grad_by_product`] says so and the table is tracked.
///
/// # Shapes
/// - `table`: `[num_rows, width]`; `indices`: `[n]`, each `< num_rows`
/// - output: `[n, width]`
pub fn select_rows<B: DaamBackend>(
    table: Tensor<B, 2>,
    indices: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    if B::lookup_grad_by_product() && table.is_require_grad() {
        select_rows_by_product(table, indices)
    } else {
        table.select(0, indices)
    }
}

/// [`select_rows`]' product route, whatever the backend.
fn select_rows_by_product<B: DaamBackend>(
    table: Tensor<B, 2>,
    indices: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let [num_rows, _] = table.dims();
    let rows = table.clone().select(0, indices.clone()).detach();
    let one_hot = indices.one_hot::<2>(num_rows).float().cast(table.dtype()); // [n, num_rows]
    let product = one_hot.matmul(table);
    rows + (product.clone() - product.detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type A = Autodiff<Flex>;

    /// The product route's value is the lookup's, exactly, and its gradient is the scatter's,
    /// with repeated and unused rows.
    #[test]
    fn product_route_is_the_lookup_with_the_same_gradient() {
        let device = Default::default();
        let table =
            Tensor::<A, 2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let indices = Tensor::<A, 1, Int>::from_data(TensorData::from([4, 0, 4, 2, 4, 0]), &device);
        let probe = Tensor::<A, 2>::random([6, 3], Distribution::Normal(0.0, 1.0), &device);
        let scattered = table.clone().select(0, indices.clone());
        let ours = select_rows_by_product(table.clone(), indices);
        ours.clone()
            .into_data()
            .assert_eq(&scattered.clone().into_data(), true);
        let g_ours = table
            .grad(&(ours * probe.clone()).sum().backward())
            .expect("tracked");
        let g_scatter = table
            .grad(&(scattered * probe).sum().backward())
            .expect("tracked");
        g_ours
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&g_scatter.into_data(), Tolerance::absolute(1e-6));
        // Row 3 is picked by no index: no gradient.
        let unused: Vec<f32> = g_ours.slice([3..4, 0..3]).into_data().to_vec().unwrap();
        assert_eq!(unused, vec![0.0; 3]);
    }
}
