//! `custodianctl audit`: exporting the trail from the server, proving an
//! event's inclusion, and verifying an export or a proof offline.

use std::path::Path;

use anyhow::Context;
use custodian_proto::v1 as pb;
use pb::audit_client::AuditClient;

use super::{Ctl, status_error};
use crate::audit::checkpoint::load_verifying_key;
use crate::audit::export::ExportWriter;
use crate::audit::merkle::Hash;
use crate::audit::verify::{InclusionProof, VerifyOutcome, verify_export};

/// What an export wrote.
#[derive(Debug)]
pub struct ExportSummary {
    /// Events written.
    pub n_events: u64,
    /// Checkpoints written.
    pub n_checkpoints: usize,
}

impl Ctl {
    fn audit(&self) -> AuditClient<tonic::transport::Channel> {
        AuditClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    /// Exports the whole trail into `dir` (see `docs/audit-export.md`).
    pub async fn export_audit(&self, dir: &Path) -> anyhow::Result<ExportSummary> {
        let mut client = self.audit();
        let head = client.get_audit_head(pb::GetAuditHeadRequest {}).await.map_err(status_error)?.into_inner();
        // Export exactly what the latest checkpoint covers, so every event is vouched for.
        let size = head.checkpoints.iter().map(|c| c.size).max().unwrap_or(0);
        let mut writer = ExportWriter::create(dir, &head.public_key_pem)?;
        for checkpoint in &head.checkpoints {
            writer.add_checkpoint(
                checkpoint.size,
                checkpoint.time_ms,
                checkpoint.text.as_bytes(),
                &checkpoint.signature,
            )?;
        }
        let mut stream = client
            .export_events(pb::ExportEventsRequest { from_seq: 0, to_seq: size })
            .await
            .map_err(status_error)?
            .into_inner();
        let mut expected = 0u64;
        while let Some(batch) = stream.message().await.map_err(status_error)? {
            for entry in batch.events {
                anyhow::ensure!(entry.seq == expected, "the server sent event {} where {expected} was due", entry.seq);
                let hash: Hash =
                    entry.leaf_hash.as_slice().try_into().context("the server sent a malformed leaf hash")?;
                writer.push_event(&hash, &entry.event)?;
                expected += 1;
            }
        }
        anyhow::ensure!(expected == size, "the server sent {expected} events, expected {size}");
        let n_events = writer.finish()?;
        Ok(ExportSummary { n_events, n_checkpoints: head.checkpoints.len() })
    }

    /// An inclusion proof of event `seq`, as JSON.
    pub async fn prove(&self, seq: u64) -> anyhow::Result<String> {
        let res = self.audit().prove_inclusion(pb::ProveInclusionRequest { seq }).await.map_err(status_error)?;
        Ok(res.into_inner().proof_json)
    }
}

impl Ctl {
    /// Asks the server for a consistency proof from the kept checkpoint
    /// `kept` to its latest checkpoint and checks it here against the public
    /// key in `key`: the latest checkpoint's signature, and that the kept
    /// tree is a prefix of it. Returns a description.
    pub async fn check_consistency(&self, kept: &Path, key: &Path) -> anyhow::Result<String> {
        use crate::audit::checkpoint::{Checkpoint, verify_signature};
        use crate::audit::merkle::verify_consistency;
        let kept_bytes = std::fs::read(kept).with_context(|| format!("read {}", kept.display()))?;
        let kept = Checkpoint::parse(&kept_bytes)?;
        let pem = std::fs::read_to_string(key).with_context(|| format!("read {}", key.display()))?;
        let key = load_verifying_key(&pem)?;
        let res = self
            .audit()
            .prove_consistency(pb::ProveConsistencyRequest { first_size: kept.size })
            .await
            .map_err(status_error)?
            .into_inner();
        anyhow::ensure!(
            verify_signature(&key, res.checkpoint.as_bytes(), &res.signature),
            "the server's latest checkpoint does not verify against the signing key"
        );
        let latest = Checkpoint::parse(res.checkpoint.as_bytes())?;
        let path = res
            .path
            .iter()
            .map(|h| hex::decode(h).ok().and_then(|b| Hash::try_from(b).ok()))
            .collect::<Option<Vec<Hash>>>()
            .context("the proof holds a malformed hash")?;
        anyhow::ensure!(
            verify_consistency(kept.size, latest.size, &kept.root, &latest.root, &path),
            "NOT CONSISTENT: the server's log of {} events does not extend the kept checkpoint of {} events; \
             history before seq {} was rewritten",
            latest.size,
            kept.size,
            kept.size
        );
        Ok(format!(
            "the kept checkpoint ({} events) is consistent with the server's latest ({} events, signed at {})",
            kept.size,
            latest.size,
            super::format_time(latest.time_ms)
        ))
    }
}

/// Verifies an export directory offline.
pub fn verify_export_dir(dir: &Path, kept: Option<&Path>) -> anyhow::Result<VerifyOutcome> {
    verify_export(dir, kept)
}

/// Verifies an inclusion proof file offline against a public key file;
/// returns a description of what it proves.
pub fn verify_proof_file(proof: &Path, public_key: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(proof).with_context(|| format!("read {}", proof.display()))?;
    let proof: InclusionProof = serde_json::from_str(&text).context("parse the proof")?;
    let pem = std::fs::read_to_string(public_key).with_context(|| format!("read {}", public_key.display()))?;
    let key = load_verifying_key(&pem)?;
    let checkpoint = proof.verify(&key)?;
    Ok(format!(
        "event {} is included in the checkpoint of {} events signed at {} (root {})",
        proof.seq,
        checkpoint.size,
        super::format_time(checkpoint.time_ms),
        hex::encode(checkpoint.root)
    ))
}
