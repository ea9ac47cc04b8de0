//! The `[outer, axis, inner]` view and its split into head chunks along `axis`.

/// A contiguous tensor seen as `[outer, axis, inner]`, statistics taken along `axis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewDims {
    /// Product of the dimensions before the statistics axis.
    pub outer: usize,
    /// Length of the statistics axis.
    pub axis: usize,
    /// Product of the dimensions after the statistics axis.
    pub inner: usize,
}

impl ViewDims {
    /// Views `dims` as `[outer, axis, inner]` around `norm_axis`.
    pub fn around(dims: &[usize], norm_axis: usize) -> Self {
        Self {
            outer: dims[..norm_axis].iter().product(),
            axis: dims[norm_axis],
            inner: dims[norm_axis + 1..].iter().product(),
        }
    }

    /// Total number of elements.
    pub fn len(&self) -> usize {
        self.outer * self.axis * self.inner
    }

    /// Whether the view holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How heads split the statistics axis: contiguous chunks of `axis / num_heads` positions, the
/// last head taking the remainder (authors' `MultiHeadDensityAdaptiveAttention`, `x.narrow`).
/// With a dividing head count every chunk has the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadChunks {
    /// Length of the split axis.
    pub axis: usize,
    /// Number of heads.
    pub num_heads: usize,
}

impl HeadChunks {
    /// `(start, len)` of head `head` along the axis.
    #[inline]
    pub fn span(&self, head: usize) -> (usize, usize) {
        let base = self.axis / self.num_heads;
        let len = if head + 1 == self.num_heads {
            self.axis - base * head
        } else {
            base
        };
        (base * head, len)
    }

    /// Splits a `[outer, axis, inner]` buffer into one disjoint mutable slice per
    /// `(outer index, head)`, in that order. Each slice is `[chunk_len, inner]`, contiguous.
    pub fn split_mut<'a, T>(
        &self,
        data: &'a mut [T],
        dims: ViewDims,
    ) -> Vec<(usize, usize, &'a mut [T])> {
        debug_assert_eq!(data.len(), dims.len());
        let mut pieces = Vec::with_capacity(dims.outer * self.num_heads);
        let mut rest = data;
        for o in 0..dims.outer {
            for h in 0..self.num_heads {
                let (_, len) = self.span(h);
                let (piece, tail) = rest.split_at_mut(len * dims.inner);
                pieces.push((o, h, piece));
                rest = tail;
            }
        }
        pieces
    }

    /// Offset of the first element of `(outer index, head)` in a `[outer, axis, inner]` buffer.
    #[inline]
    pub fn offset(&self, outer: usize, head: usize, dims: ViewDims) -> usize {
        (outer * dims.axis + self.span(head).0) * dims.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_head_takes_the_remainder() {
        let chunks = HeadChunks {
            axis: 7,
            num_heads: 3,
        };
        assert_eq!(
            (0..3).map(|h| chunks.span(h)).collect::<Vec<_>>(),
            [(0, 2), (2, 2), (4, 3)]
        );
    }

    #[test]
    fn split_covers_the_buffer_once() {
        let dims = ViewDims::around(&[2, 5, 3], 1);
        let chunks = HeadChunks {
            axis: 5,
            num_heads: 2,
        };
        let mut data: Vec<usize> = (0..dims.len()).collect();
        let pieces = chunks.split_mut(&mut data, dims);
        assert_eq!(pieces.len(), 4);
        for (o, h, piece) in pieces {
            assert_eq!(piece[0], chunks.offset(o, h, dims));
            assert_eq!(piece.len(), chunks.span(h).1 * dims.inner);
        }
    }
}
