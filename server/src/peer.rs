//! Who is calling: the identity in the verified client certificate.
//!
//! rustls has already checked the certificate chains to the Custodian CA and
//! is within its validity period (or, for a device renewing, expired within
//! the renewal grace; see [`crate::tls`]); this module reads the identity URI
//! from it and checks the caller is of the kind (device, operator role) an
//! RPC admits.

use custodian_proto::identity::{DeviceId, Identity, OperatorName, Role};
use tonic::{Request, Status};
use x509_parser::prelude::{GeneralName, X509Certificate};

use crate::tls::{ClientCertificate, Peer};

/// The calling operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Their name.
    pub name: OperatorName,
    /// Their role.
    pub role: Role,
}

impl Operator {
    /// How the operator is named in records and logs: `name (role)`.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.name, self.role)
    }
}

/// Reads the caller's identity from its verified client certificate (as
/// read once per connection, see [`ClientCertificate`]).
pub fn peer_identity<T>(req: &Request<T>) -> Result<Identity, Status> {
    match req.extensions().get::<Peer>().map(|peer| &peer.client) {
        None | Some(ClientCertificate::Absent) => {
            Err(Status::unauthenticated("a client certificate issued by the Custodian CA is required"))
        }
        Some(ClientCertificate::Unrecognised) => {
            Err(Status::unauthenticated("the client certificate names no Custodian identity"))
        }
        Some(ClientCertificate::Identity(identity)) => Ok(identity.clone()),
        Some(ClientCertificate::Expired(device_id, not_after)) => Err(expired(*device_id, *not_after)),
    }
}

fn expired(device_id: DeviceId, not_after: u64) -> Status {
    let at = crate::ctl::format_time(i64::try_from(not_after).unwrap_or(i64::MAX).saturating_mul(1000));
    Status::unauthenticated(format!(
        "the certificate of device {device_id} expired at {at}; the agent must renew it (`custodian-agent report` \
         does) before anything else is accepted"
    ))
}

/// The calling device for a certificate renewal: as [`peer_device`], but a
/// device certificate that expired within the renewal grace is accepted
/// too (see [`crate::tls`]), since renewing it is what the agent needs.
pub fn peer_device_renewing<T>(req: &Request<T>) -> Result<DeviceId, Status> {
    match req.extensions().get::<Peer>().map(|peer| &peer.client) {
        Some(ClientCertificate::Expired(device_id, _)) => Ok(*device_id),
        _ => peer_device(req),
    }
}

/// The caller's address, for logs.
pub fn remote_addr<T>(req: &Request<T>) -> Option<std::net::SocketAddr> {
    req.extensions().get::<Peer>().map(|peer| peer.remote_addr)
}

/// The identity URI in a parsed certificate, if it holds exactly one of ours.
pub fn identity_of(cert: &X509Certificate<'_>) -> Option<Identity> {
    let san = cert.subject_alternative_name().ok()??;
    let mut identities = san.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Identity::from_uri(uri),
        _ => None,
    });
    let identity = identities.next()?;
    identities.next().is_none().then_some(identity)
}

/// The calling device, refusing operators.
pub fn peer_device<T>(req: &Request<T>) -> Result<DeviceId, Status> {
    match peer_identity(req)? {
        Identity::Device(device_id) => Ok(device_id),
        Identity::Operator { .. } => Err(Status::permission_denied("this call is for enrolled devices, not operators")),
    }
}

/// The calling operator, if their role is one of `allowed`.
pub fn peer_operator<T>(req: &Request<T>, allowed: &[Role]) -> Result<Operator, Status> {
    match peer_identity(req)? {
        Identity::Device(_) => {
            Err(Status::permission_denied("this call is for operators; a device certificate cannot make it"))
        }
        Identity::Operator { name, role } if allowed.contains(&role) => Ok(Operator { name, role }),
        Identity::Operator { role, .. } => {
            let needed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(Status::permission_denied(format!(
                "role {role} may not do this; it needs one of: {}",
                needed.join(", ")
            )))
        }
    }
}
