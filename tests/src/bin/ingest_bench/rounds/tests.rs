//! Tests for splitting requests into rounds and summarising them.

use super::*;

#[test]
fn each_device_sends_consecutive_parts_in_order() {
    let per_device = vec![vec![1, 2, 3, 4, 5, 6], vec![11, 12, 13, 14, 15, 16]];
    let rounds = split(per_device, 3).unwrap();
    assert_eq!(
        rounds,
        vec![vec![vec![1, 2], vec![11, 12]], vec![vec![3, 4], vec![13, 14]], vec![vec![5, 6], vec![15, 16]]]
    );
}

#[test]
fn one_round_is_everything() {
    assert_eq!(split(vec![vec!['a', 'b'], vec!['c', 'd']], 1).unwrap(), vec![vec![vec!['a', 'b'], vec!['c', 'd']]]);
}

#[test]
fn uneven_or_zero_rounds_are_refused() {
    let err = split(vec![vec![1, 2, 3]], 2).unwrap_err();
    assert_eq!(err.to_string(), "3 requests do not split into 2 equal rounds");
    assert!(split(vec![vec![1]], 0).is_err());
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(summary(&[0.5, 0.38, 0.44]), Some(Summary { median: 0.44, min: 0.38, max: 0.5 }));
    assert_eq!(summary(&[4.0, 1.0, 3.0, 2.0]), Some(Summary { median: 2.5, min: 1.0, max: 4.0 }));
    assert_eq!(summary(&[]), None);
}
