//! `Enrollment`: the one service a caller may use without a client certificate.

use std::sync::Arc;

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::Shared;
use crate::store::DeviceRecord;

pub(super) struct EnrollmentService(pub(super) Arc<Shared>);

/// Longest hostname accepted (the DNS limit).
const MAX_HOSTNAME_LEN: usize = 253;
/// Longest serial number accepted.
const MAX_SERIAL_LEN: usize = 128;

#[tonic::async_trait]
impl pb::enrollment_server::Enrollment for EnrollmentService {
    async fn enroll(&self, req: Request<pb::EnrollRequest>) -> Result<Response<pb::EnrollResponse>, Status> {
        let remote = crate::peer::remote_addr(&req);
        let req = req.into_inner();
        let hostname = req.hostname.trim();
        if hostname.is_empty() || hostname.len() > MAX_HOSTNAME_LEN {
            return Err(Status::invalid_argument(format!("hostname must be 1 to {MAX_HOSTNAME_LEN} characters")));
        }
        let serial = req.system_serial.trim();
        if serial.len() > MAX_SERIAL_LEN {
            return Err(Status::invalid_argument(format!("serial must be at most {MAX_SERIAL_LEN} characters")));
        }
        let shared = &self.0;
        let token_hash = crate::token::hash(&req.token);
        let now = custodian_proto::now_ms();
        // Check the token before the CA signs anything for this caller.
        let token = match shared.store.check_token(&token_hash, now) {
            Ok(token) => token,
            Err(e) => {
                warn!(?remote, %hostname, error = %e, "enrolment refused");
                return Err(e.into());
            }
        };
        // A machine already in the register keeps its id, so its certificate
        // names the id the register uses.
        let serial_opt = (!serial.is_empty()).then_some(serial);
        let register_match = match shared.store.register_match(serial_opt, token.asset_tag.as_deref())? {
            Ok(found) => found,
            Err(e) => {
                warn!(?remote, %hostname, error = %e, "enrolment refused");
                return Err(e.into());
            }
        };
        let device_id = register_match.unwrap_or_else(DeviceId::random);
        let (cert, key) = shared.ca.issue_device_cert(&req.csr_pem, device_id, shared.config.device_cert_lifetime)?;
        let serial = (!serial.is_empty()).then_some(serial);
        let device = DeviceRecord::enrolled(device_id, key.to_bytes(), hostname, serial, now, cert.not_after_ms);
        let device = match shared.store.enroll(&token_hash, now, device, register_match) {
            Ok(device) => device,
            Err(e) => {
                warn!(?remote, %hostname, error = %e, "enrolment refused");
                return Err(e.into());
            }
        };
        shared.store.flush().await?;
        info!(%device_id, hostname = %device.hostname, site = ?device.site, state = %device.state, registered = register_match.is_some(), "device enrolled");
        Ok(Response::new(pb::EnrollResponse {
            device_id: device_id.to_string(),
            certificate_pem: cert.pem,
            ca_pem: shared.ca.cert_pem().to_owned(),
            not_after_ms: cert.not_after_ms,
        }))
    }
}
