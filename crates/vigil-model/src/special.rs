//! Splits decided off the fast path: categorical splits of both libraries
//! and LightGBM's rarer missing-value rules. They are looked up by index from
//! the node, so they cost nothing for models that do not use them.

/// A split decided off the fast path.
#[derive(Debug, Clone)]
pub(crate) enum Special {
    /// XGBoost categorical split: the listed categories go right; negative,
    /// too large (≥ 2^24) or unlisted values go left; NaN follows the default.
    XgbCategories { bits: Vec<u64> },
    /// LightGBM categorical split: categories in the bitset go left; NaN,
    /// negative and unlisted values go right.
    LgbCategories { bits: Vec<u32> },
    /// LightGBM numeric split whose missing type is "zero": NaN is read as 0
    /// and anything within ±1e-35 follows the default direction.
    LgbZeroMissing { threshold: f64, default_left: bool },
    /// LightGBM numeric split at +inf whose missing values go right (the
    /// +inf stand-in for NaN would go left there).
    LgbNanRight { threshold: f64 },
}

impl Special {
    pub(crate) fn goes_right(&self, x: f64, nan_left: bool) -> bool {
        match self {
            Special::XgbCategories { bits } => {
                if x.is_nan() {
                    return !nan_left;
                }
                if !(0.0..16_777_216.0).contains(&x) {
                    return false;
                }
                let c = x as usize;
                bits.get(c / 64).is_some_and(|w| (w >> (c % 64)) & 1 == 1)
            }
            Special::LgbCategories { bits } => {
                if x.is_nan() {
                    return true;
                }
                let c = x as i32;
                if c < 0 {
                    return true;
                }
                let c = c as usize;
                bits.get(c / 32).is_none_or(|w| (w >> (c % 32)) & 1 == 0)
            }
            Special::LgbZeroMissing {
                threshold,
                default_left,
            } => {
                let x = if x.is_nan() { 0.0 } else { x };
                let zero = f64::from(1e-35_f32);
                if (-zero..=zero).contains(&x) {
                    !default_left
                } else {
                    // NaN was replaced by 0 above, so `>` is the negation of `<=`.
                    x > *threshold
                }
            }
            Special::LgbNanRight { threshold } => x.is_nan() || x > *threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xgboost_categories_go_right() {
        let s = Special::XgbCategories { bits: vec![0b1010] };
        assert!(s.goes_right(1.0, true));
        assert!(s.goes_right(3.9, true));
        assert!(!s.goes_right(2.0, true));
        assert!(!s.goes_right(-0.5, true));
        assert!(!s.goes_right(1e9, true));
        assert!(!s.goes_right(f64::INFINITY, true));
        assert!(s.goes_right(f64::NAN, false));
        assert!(!s.goes_right(f64::NAN, true));
    }

    #[test]
    fn lightgbm_categories_go_left() {
        let s = Special::LgbCategories { bits: vec![0b1011] };
        assert!(!s.goes_right(0.0, false));
        assert!(!s.goes_right(-0.5, false));
        assert!(s.goes_right(2.0, false));
        assert!(s.goes_right(-1.0, false));
        assert!(s.goes_right(f64::NAN, false));
        assert!(s.goes_right(1e12, false));
    }
}
