//! Tests for the batching verifier.

use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, VerifyEnvelopeError, sign};
use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Checks `envelopes` and waits for them to come back with their results.
async fn check(verifier: &Verifier, key: VerifyingKey, envelopes: Vec<pb::SignedEnvelope>) -> Checked {
    let (reply, rx) = oneshot::channel();
    verifier.check_then(key, envelopes, move |checked| reply.send(checked).unwrap()).await.unwrap();
    rx.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_results_in_order() {
    let verifier = Verifier::start();
    let mut tasks = Vec::new();
    for device in 0..32u8 {
        let verifier = verifier.clone();
        tasks.push(tokio::spawn(async move {
            let signer = key(device + 1);
            let mut envelopes: Vec<pb::SignedEnvelope> = (0..5)
                .map(|i| sign(&signer, REPORT_PAYLOAD_TYPE, format!("device {device} report {i}").into_bytes()))
                .collect();
            // Every fourth call has its third envelope tampered with.
            let tampered = device % 4 == 0;
            if tampered {
                envelopes[2].payload[0] ^= 1;
            }
            let sent = envelopes.clone();
            let checked = check(&verifier, signer.verifying_key(), envelopes).await;
            (device, tampered, sent, checked)
        }));
    }
    for task in tasks {
        let (device, tampered, sent, checked) = task.await.unwrap();
        assert_eq!(checked.len(), 5, "device {device}");
        for (i, ((envelope, result), sent)) in checked.iter().zip(&sent).enumerate() {
            assert_eq!(envelope, sent, "device {device} envelope {i} came back changed or out of order");
            let expected = if tampered && i == 2 { Err(VerifyEnvelopeError::BadSignature) } else { Ok(()) };
            assert_eq!(result, &expected, "device {device} envelope {i}");
        }
    }
}

#[tokio::test]
async fn another_devices_key_fails_every_envelope_of_the_call() {
    let verifier = Verifier::start();
    let envelopes =
        vec![sign(&key(1), REPORT_PAYLOAD_TYPE, b"one".to_vec()), sign(&key(1), REPORT_PAYLOAD_TYPE, b"two".to_vec())];
    let checked = check(&verifier, key(2).verifying_key(), envelopes).await;
    assert!(checked.iter().all(|(_, result)| result == &Err(VerifyEnvelopeError::BadSignature)), "{checked:?}");
    assert!(check(&verifier, key(2).verifying_key(), Vec::new()).await.is_empty());
}

#[tokio::test]
async fn check_then_hands_the_results_to_the_closure_on_the_verifier_thread() {
    let verifier = Verifier::start();
    let mut envelopes: Vec<pb::SignedEnvelope> =
        (0..3).map(|i| sign(&key(5), REPORT_PAYLOAD_TYPE, format!("report {i}").into_bytes())).collect();
    envelopes[1].payload[0] ^= 1;
    let (tx, rx) = oneshot::channel();
    verifier
        .check_then(key(5).verifying_key(), envelopes, move |checked| {
            let thread = std::thread::current().name().map(str::to_owned);
            let results: Vec<_> = checked.into_iter().map(|(_, result)| result).collect();
            tx.send((thread, results)).unwrap();
        })
        .await
        .unwrap();
    let (thread, results) = rx.await.unwrap();
    assert_eq!(thread.as_deref(), Some("report-verifier"));
    assert_eq!(results, vec![Ok(()), Err(VerifyEnvelopeError::BadSignature), Ok(())]);
}
