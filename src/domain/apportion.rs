//! Dividing an amount in proportion, to the cent (`distribution.md`, "Dividing an amount").
//!
//! The largest-remainder method: every part first gets the floor of its exact share; the
//! cents left over (fewer than the number of parts) go one each to the parts with the largest
//! remainders. Ties go to the larger weight, then to the part that comes first in the order
//! the caller gave — the caller sorts by its own last tie-break (order id for distribution;
//! bucket then order id for reversals).

use super::money::Money;

/// Divides `total` among `weights` in proportion. Parts with weight 0 get nothing.
///
/// `total` must be at least zero and the weights at least zero; when `total` does not exceed
/// the sum of the weights, no part gets more than its own weight.
pub fn apportion(total: Money, weights: &[Money]) -> Vec<Money> {
    assert!(!total.is_negative(), "apportion: negative total {total}");
    assert!(weights.iter().all(|w| !w.is_negative()), "apportion: negative weight");
    let total_weight: i128 = weights.iter().map(|w| i128::from(w.cents())).sum();
    if total_weight == 0 {
        assert!(total.is_zero(), "apportion: {total} to divide among zero weights");
        return vec![Money::ZERO; weights.len()];
    }

    let amount = i128::from(total.cents());
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, weight) in weights.iter().enumerate() {
        // i128: a 99,999,999.99 pool times a weight of the same size overflows i64.
        let product = amount * i128::from(weight.cents());
        let floor = i64::try_from(product / total_weight).expect("a share fits in i64");
        shares.push(Money::from_cents(floor));
        if weight.is_positive() {
            remainders.push((product % total_weight, *weight, index));
        }
    }

    let distributed: Money = shares.iter().sum();
    let left_over = usize::try_from((total - distributed).cents()).expect("left-over cents are not negative");
    assert!(left_over < remainders.len().max(1), "apportion: {left_over} cents left over");

    // Larger remainder first; then the larger weight; then the caller's order.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    for &(_, _, index) in remainders.iter().take(left_over) {
        shares[index] += Money::from_cents(1);
    }

    assert_eq!(shares.iter().sum::<Money>(), total, "apportion: the parts must add up to the whole");
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cents(values: &[i64]) -> Vec<Money> {
        values.iter().map(|&c| Money::from_cents(c)).collect()
    }

    #[test]
    fn the_spec_example_gives_the_odd_cent_to_the_larger_remainder() {
        // 10001 × 300 / 500 = 6000.6 and 10001 × 200 / 500 = 4000.4: the cent goes to A.
        assert_eq!(apportion(Money::from_cents(10001), &cents(&[30000, 20000])), cents(&[6001, 4000]));
    }

    #[test]
    fn equal_remainders_go_to_the_larger_weight_then_the_first_part() {
        // 1 cent over weights 1 and 3: remainders 1×1 mod 4 = 1 and 1×3 mod 4 = 3.
        assert_eq!(apportion(Money::from_cents(1), &cents(&[1, 3])), cents(&[0, 1]));
        // Equal weights, equal remainders: the first part in the caller's order wins.
        assert_eq!(apportion(Money::from_cents(1), &cents(&[5, 5])), cents(&[1, 0]));
        assert_eq!(apportion(Money::from_cents(2), &cents(&[5, 5, 5])), cents(&[1, 1, 0]));
        // Equal weights and remainders (1 × 2 mod 6 = 2 for all three): the first part wins.
        assert_eq!(apportion(Money::from_cents(1), &cents(&[2, 2, 2])), cents(&[1, 0, 0]));
    }

    #[test]
    fn weight_zero_takes_no_part() {
        assert_eq!(apportion(Money::from_cents(7), &cents(&[0, 1, 1])), cents(&[0, 4, 3]));
        assert_eq!(apportion(Money::ZERO, &cents(&[0, 0])), cents(&[0, 0]));
    }

    #[test]
    fn huge_amounts_do_not_overflow() {
        let max = Money::MAX_LINE_AMOUNT;
        let shares = apportion(max, &[max, max, Money::from_cents(1)]);
        assert_eq!(shares.iter().sum::<Money>(), max);
    }

    proptest! {
        #[test]
        fn parts_add_up_and_stay_within_a_cent_of_exact(
            total in 0i64..10_000_000_000,
            weights in proptest::collection::vec(0i64..1_000_000_000, 1..8),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let shares = apportion(Money::from_cents(total), &cents(&weights));
            prop_assert_eq!(shares.iter().sum::<Money>(), Money::from_cents(total));
            let total_weight: i128 = weights.iter().map(|&w| i128::from(w)).sum();
            for (share, weight) in shares.iter().zip(&weights) {
                let exact_times_w = i128::from(total) * i128::from(*weight);
                let share_times_w = i128::from(share.cents()) * total_weight;
                // |share − exact| < 1 cent.
                prop_assert!((share_times_w - exact_times_w).abs() < total_weight);
                if *weight == 0 { prop_assert!(share.is_zero()); }
            }
        }
    }
}
