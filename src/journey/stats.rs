//! Balance statistics: shares per node or pod and Pearson's chi-squared goodness-of-fit test
//! ("is this balance what the rules predict?"). Pure functions.
//!
//! The p-value is the chi-squared survival function, `Q(df/2, χ²/2)`, the regularized upper
//! incomplete gamma function, computed by its power series below `a + 1` and by a Lentz
//! continued fraction above (the classic split, which keeps both within a few ulps).

use std::collections::BTreeMap;

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 coefficients; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

const EPS: f64 = 1e-15;
const MAX_ITER: usize = 100_000;

/// Power series for the lower regularized gamma `P(a, x)`, good for `x < a + 1`.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut del = 1.0 / a;
    let mut sum = del;
    for _ in 0..MAX_ITER {
        ap += 1.0;
        del *= x / ap;
        sum += del;
        if del.abs() < sum.abs() * EPS {
            break;
        }
    }
    (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
}

/// Continued fraction (modified Lentz) for the upper regularized gamma `Q(a, x)`, good for
/// `x ≥ a + 1`.
fn gamma_q_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..MAX_ITER {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    (h.ln() - x + a * x.ln() - ln_gamma(a)).exp()
}

/// Regularized upper incomplete gamma `Q(a, x) = Γ(a, x) / Γ(a)`, for `a > 0`, `x ≥ 0`.
/// Returns NaN outside that domain.
pub fn regularized_gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 || x < 0.0 || a.is_infinite() {
        return f64::NAN;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_fraction(a, x)
    }
}

/// Regularized lower incomplete gamma `P(a, x) = 1 − Q(a, x)`.
pub fn regularized_gamma_p(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 || x < 0.0 || a.is_infinite() {
        return f64::NAN;
    }
    if x == 0.0 {
        return 0.0;
    }
    if x.is_infinite() {
        return 1.0;
    }
    if x < a + 1.0 {
        gamma_p_series(a, x)
    } else {
        1.0 - gamma_q_fraction(a, x)
    }
}

/// Chi-squared survival function: P(X ≥ `statistic`) for `df` degrees of freedom.
pub fn chi_squared_sf(statistic: f64, df: u32) -> f64 {
    if df == 0 {
        return if statistic > 0.0 { 0.0 } else { 1.0 };
    }
    if statistic.is_nan() {
        return f64::NAN;
    }
    if statistic <= 0.0 {
        return 1.0;
    }
    regularized_gamma_q(f64::from(df) / 2.0, statistic / 2.0)
}

/// The result of a goodness-of-fit test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GoodnessOfFit {
    /// Pearson's χ² = Σ (O − E)² / E over categories with E > 0 (∞ if a category the model
    /// gives zero share was observed).
    pub statistic: f64,
    /// Categories with a positive expected share, minus one.
    pub degrees_of_freedom: u32,
    /// Probability of a χ² at least this large if the model is right.
    pub p_value: f64,
    pub total: u64,
    /// Smallest expected count among the categories tested. Below 5 the χ² approximation is
    /// rough: show the p-value with that caveat.
    pub min_expected: f64,
}

impl GoodnessOfFit {
    /// The rule of thumb for the χ² approximation: every expected count at least 5.
    pub fn approximation_reliable(&self) -> bool {
        self.min_expected >= 5.0
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{observed} observed categories but {expected} expected shares")]
    LengthMismatch { observed: usize, expected: usize },
    #[error("no categories to compare")]
    NoCategories,
    #[error("no observations to test")]
    NoObservations,
    #[error("expected share #{index} is {value}; shares must be finite and non-negative")]
    BadShare { index: usize, value: f64 },
    #[error("expected shares sum to zero")]
    ZeroShares,
}

/// Pearson's chi-squared goodness-of-fit of `observed` counts against `expected_shares`
/// (any non-negative weights; they are normalised to sum to 1).
pub fn chi_squared_gof(
    observed: &[u64],
    expected_shares: &[f64],
) -> Result<GoodnessOfFit, FitError> {
    if observed.len() != expected_shares.len() {
        return Err(FitError::LengthMismatch {
            observed: observed.len(),
            expected: expected_shares.len(),
        });
    }
    if observed.is_empty() {
        return Err(FitError::NoCategories);
    }
    if let Some((index, &value)) = expected_shares
        .iter()
        .enumerate()
        .find(|(_, s)| !s.is_finite() || **s < 0.0)
    {
        return Err(FitError::BadShare { index, value });
    }
    let weight: f64 = expected_shares.iter().sum();
    if weight <= 0.0 {
        return Err(FitError::ZeroShares);
    }
    let total: u64 = observed.iter().fold(0u64, |a, b| a.saturating_add(*b));
    if total == 0 {
        return Err(FitError::NoObservations);
    }
    let n = total as f64;
    let mut statistic = 0.0;
    let mut categories = 0u32;
    let mut min_expected = f64::INFINITY;
    for (&o, &s) in observed.iter().zip(expected_shares) {
        let e = n * s / weight;
        if e > 0.0 {
            let d = o as f64 - e;
            statistic += d * d / e;
            categories += 1;
            min_expected = min_expected.min(e);
        } else if o > 0 {
            statistic = f64::INFINITY;
        }
    }
    let degrees_of_freedom = categories.saturating_sub(1);
    let p_value = if statistic.is_infinite() {
        0.0
    } else {
        chi_squared_sf(statistic, degrees_of_freedom)
    };
    Ok(GoodnessOfFit {
        statistic,
        degrees_of_freedom,
        p_value,
        total,
        min_expected,
    })
}

/// Each count's share of the total (all zeros when the total is zero).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().fold(0u64, |a, b| a.saturating_add(*b));
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// One row of a per-node or per-pod balance table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareRow<K> {
    pub key: K,
    pub count: u64,
    pub share: f64,
    /// The model's share, normalised over the keys it knows; `None` for keys it does not.
    pub expected_share: Option<f64>,
}

/// Join observed counts with expected shares into rows ordered by key. Keys only in
/// `expected` appear with count 0; keys only in `observed` have no expected share.
pub fn share_rows<K: Ord + Clone>(
    observed: &BTreeMap<K, u64>,
    expected: &BTreeMap<K, f64>,
) -> Vec<ShareRow<K>> {
    let total: u64 = observed.values().fold(0u64, |a, b| a.saturating_add(*b));
    let weight: f64 = expected
        .values()
        .filter(|w| w.is_finite() && **w > 0.0)
        .sum();
    let mut keys: Vec<&K> = observed.keys().chain(expected.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let count = observed.get(k).copied().unwrap_or(0);
            ShareRow {
                key: k.clone(),
                count,
                share: if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                },
                expected_share: expected.get(k).map(|w| {
                    if weight > 0.0 && w.is_finite() && *w > 0.0 {
                        w / weight
                    } else {
                        0.0
                    }
                }),
            }
        })
        .collect()
}

/// Goodness of fit over share rows: categories the model does not know are left out (and
/// their count with them); `None` when nothing is left to test.
pub fn share_rows_fit<K>(rows: &[ShareRow<K>]) -> Option<GoodnessOfFit> {
    let (obs, exp): (Vec<u64>, Vec<f64>) = rows
        .iter()
        .filter_map(|r| r.expected_share.map(|e| (r.count, e)))
        .unzip();
    chi_squared_gof(&obs, &exp).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        if b == 0.0 {
            a.abs() < 1e-300
        } else {
            ((a - b) / b).abs() < rel
        }
    }

    /// Reference values from mpmath (30 digits): `gammainc(k/2, x/2, inf, regularized=True)`.
    #[test]
    fn chi_squared_survival_matches_reference() {
        let cases: &[(f64, u32, f64)] = &[
            (3.841_458_820_694_124, 1, 0.050_000_000_000_000_06),
            (5.991_464_547_107_979, 2, 0.050_000_000_000_000_07),
            (18.307_038_053_275_146, 10, 0.050_000_000_000_000_01),
            (1.0, 1, 0.317_310_507_862_914_1),
            (10.0, 3, 0.018_566_135_463_043_233),
            (0.5, 4, 0.973_500_978_839_256_1),
            (100.0, 50, 3.454_931_382_984_864e-5),
            (2000.0, 1999, 0.489_486_661_584_393_15),
            (1e-10, 2, 0.999_999_999_95),
            (50.0, 2, 1.388_794_386_496_402e-11),
            (1200.0, 1000, 1.225_594_233_062_290_4e-5),
            (700.0, 1, 2.990_226_975_124_620_3e-154),
        ];
        for &(x, k, want) in cases {
            let got = chi_squared_sf(x, k);
            assert!(
                close(got, want, 1e-9),
                "sf({x}, {k}) = {got:e}, want {want:e}"
            );
        }
        assert_eq!(chi_squared_sf(0.0, 3), 1.0);
        assert_eq!(chi_squared_sf(5.0, 0), 0.0);
    }

    #[test]
    fn incomplete_gamma_reference_and_identities() {
        assert!(close(
            regularized_gamma_q(0.5, 2.0),
            0.045_500_263_896_358_41,
            1e-10
        ));
        assert!(close(
            regularized_gamma_q(3.0, 0.1),
            0.999_845_346_929_735_3,
            1e-12
        ));
        assert!(close(
            regularized_gamma_q(10.0, 30.0),
            7.121_750_862_815_577e-6,
            1e-9
        ));
        assert!(close(
            regularized_gamma_q(0.001, 0.001),
            0.006_312_353_291_139_71,
            1e-8
        ));
        // Q(1, x) = e^-x.
        for x in [0.01, 0.5, 1.0, 2.0, 7.5, 40.0] {
            assert!(
                close(regularized_gamma_q(1.0, x), (-x).exp(), 1e-12),
                "x={x}"
            );
            assert!(
                (regularized_gamma_p(1.0, x) + regularized_gamma_q(1.0, x) - 1.0).abs() < 1e-14
            );
        }
        assert!(regularized_gamma_q(-1.0, 1.0).is_nan());
        assert!(regularized_gamma_q(1.0, f64::NAN).is_nan());
        assert_eq!(regularized_gamma_q(2.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn ln_gamma_values() {
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-13));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
    }

    #[test]
    fn goodness_of_fit() {
        // A fair three-way split observed as 30/30/40 of 100: χ² = 2, df 2, p = e^-1.
        let g = chi_squared_gof(&[30, 30, 40], &[1.0, 1.0, 1.0]).unwrap();
        assert!((g.statistic - 2.0).abs() < 1e-12);
        assert_eq!(g.degrees_of_freedom, 2);
        assert!(close(g.p_value, (-1.0f64).exp(), 1e-12));
        assert!(g.approximation_reliable());
        // Shares need not be normalised.
        let g2 = chi_squared_gof(&[30, 30, 40], &[0.2, 0.2, 0.2]).unwrap();
        assert!(
            (g2.statistic - g.statistic).abs() < 1e-12 && (g2.p_value - g.p_value).abs() < 1e-12
        );
        // Perfect fit.
        assert_eq!(
            chi_squared_gof(&[50, 50], &[0.5, 0.5]).unwrap().p_value,
            1.0
        );
        // A category the model excludes but traffic reached: impossible under the model.
        let g = chi_squared_gof(&[10, 0, 3], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(g.p_value, 0.0);
        assert!(g.statistic.is_infinite());
        // Zero expected, zero observed: left out.
        let g = chi_squared_gof(&[10, 10, 0], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(g.degrees_of_freedom, 1);
        // Small expected counts are flagged.
        assert!(
            !chi_squared_gof(&[1, 2], &[0.5, 0.5])
                .unwrap()
                .approximation_reliable()
        );
    }

    #[test]
    fn goodness_of_fit_errors() {
        assert_eq!(
            chi_squared_gof(&[1], &[0.5, 0.5]),
            Err(FitError::LengthMismatch {
                observed: 1,
                expected: 2
            })
        );
        assert_eq!(chi_squared_gof(&[], &[]), Err(FitError::NoCategories));
        assert_eq!(
            chi_squared_gof(&[0, 0], &[0.5, 0.5]),
            Err(FitError::NoObservations)
        );
        assert!(matches!(
            chi_squared_gof(&[1, 1], &[f64::NAN, 0.5]),
            Err(FitError::BadShare { index: 0, .. })
        ));
        assert_eq!(
            chi_squared_gof(&[1, 1], &[0.0, 0.0]),
            Err(FitError::ZeroShares)
        );
    }

    #[test]
    fn share_helpers() {
        assert_eq!(shares(&[1, 3]), [0.25, 0.75]);
        assert_eq!(shares(&[0, 0]), [0.0, 0.0]);
        let obs: BTreeMap<&str, u64> = [("node0", 6), ("node1", 4), ("stray", 1)].into();
        let exp: BTreeMap<&str, f64> = [("node0", 1.0), ("node1", 1.0), ("node2", 2.0)].into();
        let rows = share_rows(&obs, &exp);
        let keys: Vec<&str> = rows.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["node0", "node1", "node2", "stray"]);
        assert_eq!(rows[2].count, 0);
        assert_eq!(rows[2].expected_share, Some(0.5));
        assert_eq!(rows[3].expected_share, None);
        assert!((rows[0].share - 6.0 / 11.0).abs() < 1e-12);
        let fit = share_rows_fit(&rows).unwrap();
        assert_eq!(fit.total, 10);
        assert_eq!(fit.degrees_of_freedom, 2);
    }
}
