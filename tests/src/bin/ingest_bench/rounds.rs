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
/// agent's do. Refused when `rounds` is zero or does not divide a device's
/// requests evenly.
pub(crate) fn split<T>(per_device: Vec<Vec<T>>, rounds: usize) -> anyhow::Result<Vec<Vec<Vec<T>>>> {
    anyhow::ensure!(rounds > 0, "at least one round is needed");
    let mut by_round: Vec<Vec<Vec<T>>> = (0..rounds).map(|_| Vec::with_capacity(per_device.len())).collect();
    for requests in per_device {
        anyhow::ensure!(
            requests.len().is_multiple_of(rounds),
            "{} requests do not split into {rounds} equal rounds",
            requests.len()
        );
        let per_round = requests.len() / rounds;
        let mut requests = requests.into_iter();
        for round in &mut by_round {
            round.push(requests.by_ref().take(per_round).collect());
        }
    }
    Ok(by_round)
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
#[path = "rounds/tests.rs"]
mod tests;
