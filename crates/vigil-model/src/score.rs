//! Row and batch drivers shared by both libraries: convert the caller's f64
//! values into the library's numeric type in stack buffers, start from the
//! base margin, let the forest add its trees, then apply the link.

use crate::forest::{Float, Forest, ROW_BLOCK, prepare_row};

/// Values kept on the stack for one prepared row, two per feature (larger
/// models use the heap).
const ROW_STACK: usize = 512;
/// Outputs kept on the stack for one row.
const OUT_STACK: usize = 16;

/// Run `f` on a buffer of `len` copies of `fill`: on the stack when it fits
/// in `N`, on the heap otherwise.
fn with_scratch<T: Copy, R, const N: usize>(
    len: usize,
    fill: T,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    if len <= N {
        let mut buf = [fill; N];
        f(&mut buf[..len])
    } else {
        let mut buf = vec![fill; len];
        f(&mut buf)
    }
}

/// Score one row whose length the caller has checked.
pub(crate) fn row<F: Float>(
    forest: &Forest<F>,
    base: &[F],
    row: &[f64],
    out: &mut [f64],
    finish: impl Fn(&mut [F], &mut [f64]),
) {
    with_scratch::<F, _, ROW_STACK>(2 * row.len(), F::NAN, |x| {
        prepare_row(row, x);
        with_scratch::<F, _, OUT_STACK>(base.len(), F::default(), |acc| {
            acc.copy_from_slice(base);
            forest.accumulate_row(x, acc);
            finish(acc, out);
        });
    });
}

/// Score `out.len() / base.len()` rows laid out in `rows`; the caller has
/// checked that the lengths agree.
pub(crate) fn batch<F: Float>(
    forest: &Forest<F>,
    base: &[F],
    rows: &[f64],
    out: &mut [f64],
    finish: impl Fn(&mut [F], &mut [f64]),
) {
    let nf = forest.num_features();
    let k = base.len();
    if nf == 0 {
        for o in out.chunks_mut(k) {
            row(forest, base, &[], o, &finish);
        }
        return;
    }
    with_scratch::<F, _, { ROW_BLOCK * ROW_STACK }>(ROW_BLOCK * 2 * nf, F::NAN, |x| {
        with_scratch::<F, _, { ROW_BLOCK * OUT_STACK }>(ROW_BLOCK * k, F::default(), |acc| {
            for (src, dst) in rows
                .chunks(ROW_BLOCK * nf)
                .zip(out.chunks_mut(ROW_BLOCK * k))
            {
                for (s, d) in src.chunks_exact(nf).zip(x.chunks_exact_mut(2 * nf)) {
                    prepare_row(s, d);
                }
                // A short last block is padded with all-missing rows.
                for d in x.iter_mut().skip(2 * src.len()) {
                    *d = F::NAN;
                }
                for a in acc.chunks_exact_mut(k) {
                    a.copy_from_slice(base);
                }
                forest.accumulate_block(x, acc);
                for (a, o) in acc.chunks_exact_mut(k).zip(dst.chunks_exact_mut(k)) {
                    finish(a, o);
                }
            }
        });
    });
}
