//! Conversions from store records to wire types.

use custodian_proto::v1 as pb;

use crate::store::{DeviceRecord, StoredEnvelope};

pub(super) fn to_pb_device(device: &DeviceRecord) -> pb::DeviceSummary {
    pb::DeviceSummary {
        device_id: device.device_id.to_string(),
        hostname: device.hostname.clone(),
        serial: device.serial.clone().unwrap_or_default(),
        vendor: device.vendor.clone().unwrap_or_default(),
        model: device.model.clone().unwrap_or_default(),
        site: device.site.clone().unwrap_or_default(),
        enrolled_at_ms: device.enrolled_at_ms,
        last_seen_ms: device.last_seen_ms.unwrap_or(0),
        last_seq: device.last_seq,
        n_reports: device.n_reports,
        cert_not_after_ms: device.cert_not_after_ms,
        revocation: device.revocation.as_ref().map(|r| pb::Revocation {
            revoked_at_ms: r.revoked_at_ms,
            revoked_by: r.revoked_by.clone(),
            reason: r.reason.clone(),
        }),
        public_key_hex: hex::encode(device.public_key),
        encryption_compliance: None,
        last_inventory_ms: 0,
        state: device.state.as_str().to_owned(),
        asset_tag: device.asset_tag.clone().unwrap_or_default(),
        ward: device.ward.clone().unwrap_or_default(),
        assigned_to: device.assigned_to.clone().unwrap_or_default(),
        supplier: device.supplier.clone().unwrap_or_default(),
        order_ref: device.order_ref.clone().unwrap_or_default(),
        registered_model: device.registered_model.clone().unwrap_or_default(),
        macs: device.macs.clone(),
        registered_at_ms: device.registered_at_ms.unwrap_or(0),
        state_changed_at_ms: device.state_changed_at_ms.unwrap_or(0),
        kind: super::attestation::to_pb_kind(device.kind).into(),
    }
}

pub(super) fn to_pb_envelope(envelope: &StoredEnvelope) -> pb::SignedEnvelope {
    pb::SignedEnvelope {
        payload: envelope.payload.clone(),
        payload_type: envelope.payload_type.clone(),
        signature: envelope.signature.clone(),
    }
}
