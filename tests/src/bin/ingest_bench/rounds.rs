//! Alternated rounds of baseline and ingest, and their median.
//!
//! On a shared VM the machine's speed drifts by a quarter or more within a
//! minute, and the baseline moves the most, so one pair of runs can give a
//! ratio anywhere from 0.38 to 0.50 for the same build. Alternating the two
//! several times and taking the median ratio measures the build rather than
//! the moment.

/// Splits each device's requests, in order, into `rounds` consecutive equal
/// parts: `result[round][device]` is what the device sends in that round.
/// Sequence numbers so carry on from one round to the next, as a real
/// agent's do.
///
/// # Panics
/// If `rounds` is zero or does not divide a device's requests evenly.
pub(crate) fn split<T>(per_device: Vec<Vec<T>>, rounds: usize) -> Vec<Vec<Vec<T>>> {
    assert!(rounds > 0, "at least one round");
    let mut by_round: Vec<Vec<Vec<T>>> = (0..rounds).map(|_| Vec::with_capacity(per_device.len())).collect();
    for requests in per_device {
        assert!(requests.len().is_multiple_of(rounds), "{} requests do not split into {rounds} rounds", requests.len());
        let per_round = requests.len() / rounds;
        let mut requests = requests.into_iter();
        for round in &mut by_round {
            round.push(requests.by_ref().take(per_round).collect());
        }
    }
    by_round
}

/// The median, the smallest and the largest of `values` (the mean of the
/// middle two when their number is even); `None` when there are none.
pub(crate) fn summary(values: &[f64]) -> Option<Summary> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 };
    Some(Summary { median, min: first, max: last })
}

/// See [`summary`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_sends_consecutive_parts_in_order() {
        let per_device = vec![vec![1, 2, 3, 4, 5, 6], vec![11, 12, 13, 14, 15, 16]];
        let rounds = split(per_device, 3);
        assert_eq!(
            rounds,
            vec![vec![vec![1, 2], vec![11, 12]], vec![vec![3, 4], vec![13, 14]], vec![vec![5, 6], vec![15, 16]]]
        );
    }

    #[test]
    fn one_round_is_everything() {
        assert_eq!(split(vec![vec!['a', 'b'], vec!['c', 'd']], 1), vec![vec![vec!['a', 'b'], vec!['c', 'd']]]);
    }

    #[test]
    #[should_panic(expected = "do not split into 2 rounds")]
    fn uneven_rounds_are_refused() {
        split(vec![vec![1, 2, 3]], 2);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(summary(&[0.5, 0.38, 0.44]), Some(Summary { median: 0.44, min: 0.38, max: 0.5 }));
        assert_eq!(summary(&[4.0, 1.0, 3.0, 2.0]), Some(Summary { median: 2.5, min: 1.0, max: 4.0 }));
        assert_eq!(summary(&[]), None);
    }
}
