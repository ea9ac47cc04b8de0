//! A bounds-checked wrapper over the `gemm` crate's strided `f32` matrix multiply (the crate
//! and version burn's Flex backend itself uses).

/// A read-only strided matrix inside a slice: element `(i, j)` is
/// `data[offset + i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Whether the strided extent fits in `len` elements.
fn fits(len: usize, offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0
        || cols == 0
        || (rows - 1)
            .checked_mul(rs)
            .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
            .and_then(|last| last.checked_add(offset))
            .is_some_and(|last| last < len)
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` view.
    ///
    /// # Panics
    /// When an element of the view lies outside `data`.
    pub fn new(
        data: &'a [f32],
        offset: usize,
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        assert!(
            fits(data.len(), offset, rows, cols, row_stride, col_stride),
            "matrix view {rows}×{cols} at offset {offset} with strides ({row_stride}, \
             {col_stride}) exceeds the {} elements of its buffer",
            data.len()
        );
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, [rows, cols], [cols, 1])
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A mutable strided matrix inside a slice (strides as [`MatRef`]).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A `rows × cols` view.
    ///
    /// # Panics
    /// When an element of the view lies outside `data`, or when the strides let two elements
    /// alias (a row stride below `cols · col_stride` with a unit column stride, or vice versa).
    pub fn new(
        data: &'a mut [f32],
        offset: usize,
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        assert!(
            fits(data.len(), offset, rows, cols, row_stride, col_stride),
            "matrix view {rows}×{cols} at offset {offset} with strides ({row_stride}, \
             {col_stride}) exceeds the {} elements of its buffer",
            data.len()
        );
        let distinct = rows <= 1
            || cols <= 1
            || (col_stride >= 1 && row_stride >= cols * col_stride)
            || (row_stride >= 1 && col_stride >= rows * row_stride);
        assert!(
            distinct,
            "matrix view {rows}×{cols} with strides ({row_stride}, {col_stride}) aliases"
        );
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, 0, [rows, cols], [cols, 1])
    }
}

/// `dst ← (accumulate ? dst : 0) + scale · lhs · rhs`, on the rayon pool when `parallel`.
///
/// # Panics
/// When the shapes do not chain (`lhs` `m × k`, `rhs` `k × n`, `dst` `m × n`).
pub fn matmul(
    dst: MatMut<'_>,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && dst.rows == m && dst.cols == n,
        "matmul shapes: lhs {m}×{k}, rhs {}×{n}, dst {}×{}",
        rhs.rows,
        dst.rows,
        dst.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[dst.offset + i * dst.row_stride + j * dst.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let signed = |s: usize| isize::try_from(s).expect("stride fits isize");
    // SAFETY: every element the call reads or writes lies inside the borrowed slices (checked
    // by `MatRef::new` / `MatMut::new` for exactly these dimensions and strides), `dst` is a
    // unique borrow whose elements are distinct (checked by `MatMut::new`), and it cannot
    // overlap `lhs` or `rhs`, which are shared borrows.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr().add(dst.offset),
            signed(dst.col_stride),
            signed(dst.row_stride),
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            signed(lhs.col_stride),
            signed(lhs.row_stride),
            rhs.data.as_ptr().add(rhs.offset),
            signed(rhs.col_stride),
            signed(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether an `m × k · k × n` product is large enough to split over the rayon pool (burn
/// Flex's own threshold, 192³ multiply-adds).
pub fn worth_parallel(m: usize, k: usize, n: usize) -> bool {
    m.saturating_mul(k).saturating_mul(n) >= 192 * 192 * 192
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_product_with_accumulation_matches_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        // b stored transposed: (p, j) at j·k + p.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut out = vec![1.0; m * n];
        matmul(
            MatMut::row_major(&mut out, m, n),
            true,
            MatRef::row_major(&a, m, k),
            MatRef::new(&bt, 0, [k, n], [1, k]),
            2.0,
            false,
        );
        let want = naive(&a, &b, m, k, n);
        for (got, want) in out.iter().zip(&want) {
            assert!((got - (1.0 + 2.0 * want)).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    #[should_panic = "exceeds"]
    fn view_past_the_buffer_panics() {
        let data = [0.0; 5];
        let _ = MatRef::new(&data, 0, [2, 3], [3, 1]);
    }
}
