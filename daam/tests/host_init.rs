//! [`daam::host_init::init_on_host`] in a test binary of its own: it seeds Flex's global
//! generator and draws from it, and a random tensor drawn by a test on another thread in
//! between (the unit tests draw many) would change what it draws.

use burn::backend::{Autodiff, Flex};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use daam::host_init::init_on_host;

#[test]
fn the_seed_gives_the_host_draw_on_another_backend() {
    let config = LinearConfig::new(5, 3);
    let device = Default::default();
    let moved: Linear<Autodiff<Flex>> =
        init_on_host(7, &device, |d| config.init(d), |d| config.init(d));
    Flex::seed(&device, 7);
    let drawn: Linear<Flex> = config.init(&device);
    let moved = moved.weight.val().inner().into_data();
    moved.assert_eq(&drawn.weight.val().into_data(), true);
    // Another seed draws other weights: the seed is what decides.
    let other: Linear<Autodiff<Flex>> =
        init_on_host(8, &device, |d| config.init(d), |d| config.init(d));
    let other: Tensor<Flex, 2> = other.weight.val().inner();
    assert_ne!(other.into_data(), moved);
}
