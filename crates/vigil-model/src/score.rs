//! Row and batch drivers shared by both libraries: convert the caller's f64
//! values into the library's numeric type in stack buffers, start from the
//! base margin, let the forest add its trees, then apply the link.

use crate::forest::{Float, Forest, ROW_BLOCK, prepare_row};

/// Values kept on the stack for one prepared row, two per feature (larger
/// models use the heap).
const ROW_STACK: usize = 512;
/// Outputs kept on the stack for one row.
const OUT_STACK: usize = 16;
/// A block with fewer rows than this is scored row by row: the block path
/// does a full block's work however few rows it holds (a lone row through it
/// costs ~5× the row path, measured with callgrind on `ulb_xgb_200`).
const MIN_BLOCK_ROWS: usize = 4;

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
    let x_log2 = (2 * row.len()).max(1).next_power_of_two().trailing_zeros();
    with_scratch::<F, _, ROW_STACK>(1 << x_log2, F::NAN, |x| {
        prepare_row(row, x);
        with_scratch::<F, _, OUT_STACK>(base.len(), F::default(), |acc| {
            acc.copy_from_slice(base);
            forest.accumulate_row(x, x_log2, acc);
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
    let x_log2 = (ROW_BLOCK * 2 * nf).next_power_of_two().trailing_zeros();
    with_scratch::<F, _, { ROW_BLOCK * ROW_STACK }>(1 << x_log2, F::NAN, |x| {
        with_scratch::<F, _, { ROW_BLOCK * OUT_STACK }>(ROW_BLOCK * k, F::default(), |acc| {
            for (src, dst) in rows
                .chunks(ROW_BLOCK * nf)
                .zip(out.chunks_mut(ROW_BLOCK * k))
            {
                if src.len() < MIN_BLOCK_ROWS * nf {
                    for (r, o) in src.chunks_exact(nf).zip(dst.chunks_exact_mut(k)) {
                        row(forest, base, r, o, &finish);
                    }
                    continue;
                }
                prepare_block(src, nf, x);
                for a in acc.chunks_exact_mut(k) {
                    a.copy_from_slice(base);
                }
                forest.accumulate_block(x, x_log2, acc);
                for (a, o) in acc.chunks_exact_mut(k).zip(dst.chunks_exact_mut(k)) {
                    finish(a, o);
                }
            }
        });
    });
}

/// Lay out up to `ROW_BLOCK` rows of `nf` values feature-major, as
/// [`Forest::accumulate_block`] reads them: value `f` of row `r` at
/// `f * ROW_BLOCK + r`, then the NaN-as-+inf copy at `(nf + f) * ROW_BLOCK + r`.
/// Missing rows of a short block are all-missing.
fn prepare_block<F: Float>(src: &[f64], nf: usize, x: &mut [F]) {
    let rows = src.len() / nf;
    let (raw, filled) = x.split_at_mut(nf * ROW_BLOCK);
    for (f, (raw_f, filled_f)) in raw
        .chunks_exact_mut(ROW_BLOCK)
        .zip(filled.chunks_exact_mut(ROW_BLOCK))
        .enumerate()
    {
        for r in 0..ROW_BLOCK {
            let v = if r < rows {
                src.get(r * nf + f).copied().unwrap_or(f64::NAN)
            } else {
                f64::NAN
            };
            let conv = F::from_f64(v);
            raw_f[r] = conv;
            filled_f[r] = if v.is_nan() { F::INFINITY } else { conv };
        }
    }
}
