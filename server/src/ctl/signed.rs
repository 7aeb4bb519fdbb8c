//! What `custodianctl` shows of a signed envelope. The server sends each
//! envelope verbatim beside its own decoded copy and the signer's enrolled
//! key; the CLI checks the signature under that key, decodes the signed
//! bytes itself and shows those, so that what it calls verified is what the
//! key signed, not the server's rendering of it. The server's copy is shown
//! only when the signature does not verify, and then it says so. (The key
//! itself comes from the server; comparing it with the one the machine
//! enrolled is what `device show`'s `public key` line is for.)

use custodian_proto::envelope;
use custodian_proto::v1 as pb;
use prost::Message;

/// The content to show, and what the CLI's own check found.
#[derive(Debug)]
pub(super) struct Checked<M> {
    /// The signed content when the signature verifies, else the server's copy.
    pub(super) content: M,
    /// What the check found.
    pub(super) verdict: Verdict,
}

/// What checking an envelope found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The signature verifies and the server's copy is the signed content.
    Verified,
    /// The signature verifies, but the server's decoded copy is not what
    /// was signed (a fault or tampering on the server's side).
    ServerCopyDiffers,
    /// The signature does not verify, or the signed bytes do not decode.
    DoesNotVerify(String),
}

impl Verdict {
    /// Whether the signature verifies (whatever the server's copy says).
    pub(super) fn signature_verifies(&self) -> bool {
        !matches!(self, Verdict::DoesNotVerify(_))
    }

    /// The verdict for a terminal.
    pub(super) fn text(&self) -> String {
        match self {
            Verdict::Verified => "verified by custodianctl against the enrolled key".to_owned(),
            Verdict::ServerCopyDiffers => "verified by custodianctl against the enrolled key, but THE SERVER'S \
                                           DECODED COPY DIFFERS from the signed one (shown here)"
                .to_owned(),
            Verdict::DoesNotVerify(why) => format!("DOES NOT VERIFY: {why} (showing the server's copy)"),
        }
    }
}

/// Checks `envelope` as `payload_type` under the hex Ed25519 key the server
/// sent, and picks what to show: the signed content, or `server_copy`.
pub(super) fn check<M: Message + Default + PartialEq + Clone>(
    public_key_hex: &str,
    envelope: &pb::SignedEnvelope,
    payload_type: &str,
    server_copy: &M,
) -> Checked<M> {
    match signed_content::<M>(public_key_hex, envelope, payload_type) {
        Ok(signed) => {
            let verdict = if signed == *server_copy { Verdict::Verified } else { Verdict::ServerCopyDiffers };
            Checked { content: signed, verdict }
        }
        Err(why) => Checked { content: server_copy.clone(), verdict: Verdict::DoesNotVerify(why) },
    }
}

/// The envelope's content, once its signature verifies.
fn signed_content<M: Message + Default>(
    public_key_hex: &str,
    envelope: &pb::SignedEnvelope,
    payload_type: &str,
) -> Result<M, String> {
    let key_bytes: [u8; 32] = hex::decode(public_key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the server sent no valid public key".to_owned())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).map_err(|e| format!("enrolled key: {e}"))?;
    let payload = envelope::verify(&key, envelope, payload_type).map_err(|e| e.to_string())?;
    M::decode(payload).map_err(|e| format!("the signed payload does not decode: {e}"))
}

#[cfg(test)]
mod tests;
