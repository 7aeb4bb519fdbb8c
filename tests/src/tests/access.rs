//! Who may call what: identity comes from the client certificate, and each
//! call admits only the kinds of caller (device, operator role) it is for.

use custodian_proto::identity::Role;
use custodian_proto::v1 as pb;
use pb::agent_client::AgentClient;
use pb::operator_client::OperatorClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::raw::{anonymous_channel, operator_channel};
use crate::{DeviceCredentials, Machine, RawDevice, Server, TestDir};

#[track_caller]
fn check_refused<T: std::fmt::Debug>(res: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = res.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(status.message().contains(message), "expected {message:?} in {status:?}");
}

#[tokio::test]
async fn no_client_certificate_is_refused_for_agent_and_operator_calls() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let creds = DeviceCredentials::load(machine.state_dir());
    let channel = anonymous_channel(&server.url(), &server.ca_pem()).await;
    const NEEDS_CERT: &str = "client certificate";

    let mut agent = AgentClient::new(channel.clone());
    // Even a correctly signed report is refused without the device's certificate.
    let envelope = creds.sign(&creds.report(2, "ward7-pc01"));
    let res = agent.submit_reports(pb::SubmitReportsRequest { envelopes: vec![envelope] }).await;
    check_refused(res, Code::Unauthenticated, NEEDS_CERT);
    let res = agent.renew(pb::RenewRequest { csr_pem: String::new() }).await;
    check_refused(res, Code::Unauthenticated, NEEDS_CERT);

    let mut operator = OperatorClient::new(channel);
    check_refused(operator.list_devices(pb::ListDevicesRequest::default()).await, Code::Unauthenticated, NEEDS_CERT);
    let res = operator.get_device(pb::GetDeviceRequest { query: "ward7-pc01".to_owned() }).await;
    check_refused(res, Code::Unauthenticated, NEEDS_CERT);
    let res = operator.create_enrollment_token(pb::CreateEnrollmentTokenRequest::default()).await;
    check_refused(res, Code::Unauthenticated, NEEDS_CERT);
    let res = operator
        .revoke_device(pb::RevokeDeviceRequest { query: "ward7-pc01".to_owned(), reason: "x".to_owned() })
        .await;
    check_refused(res, Code::Unauthenticated, NEEDS_CERT);

    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1), "nothing may have been stored");
    assert_eq!(server.device_json("ward7-pc01").await["status"], "active");
}

#[tokio::test]
async fn device_certificate_cannot_call_operator_rpcs() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let device = RawDevice::connect(&server.url(), DeviceCredentials::load(machine.state_dir())).await;
    let mut operator = device.operator_client();
    const OPERATORS_ONLY: &str = "a device certificate cannot make it";

    check_refused(
        operator.list_devices(pb::ListDevicesRequest::default()).await,
        Code::PermissionDenied,
        OPERATORS_ONLY,
    );
    let res = operator.get_device(pb::GetDeviceRequest { query: "ward7-pc01".to_owned() }).await;
    check_refused(res, Code::PermissionDenied, OPERATORS_ONLY);
    let res = operator.create_enrollment_token(pb::CreateEnrollmentTokenRequest::default()).await;
    check_refused(res, Code::PermissionDenied, OPERATORS_ONLY);
    let res = operator
        .revoke_device(pb::RevokeDeviceRequest { query: "ward7-pc01".to_owned(), reason: "self".to_owned() })
        .await;
    check_refused(res, Code::PermissionDenied, OPERATORS_ONLY);
    assert_eq!(server.device_json("ward7-pc01").await["status"], "active");
}

#[tokio::test]
async fn operator_certificate_cannot_submit_reports() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let creds = DeviceCredentials::load(machine.state_dir());
    let channel = operator_channel(&server.url(), &server.identity(Role::Admin)).await;

    let envelope = creds.sign(&creds.report(2, "ward7-pc01"));
    let res = AgentClient::new(channel).submit_reports(pb::SubmitReportsRequest { envelopes: vec![envelope] }).await;
    check_refused(res, Code::PermissionDenied, "for enrolled devices, not operators");
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1));
}

#[tokio::test]
async fn service_desk_cannot_create_tokens_or_revoke() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;

    let out = server.ctl_run(Role::ServiceDesk, &["token", "create"]).await;
    let out = out.failure(&["permission denied", "role service-desk may not do this", "engineer, admin"]);
    assert!(!out.stdout.contains("cust_enr_"), "a token was printed:\n{out}");
    server.ctl_run(Role::IgAuditor, &["token", "create"]).await.failure(&["role ig-auditor may not do this"]);

    let out = server.ctl_run(Role::ServiceDesk, &["device", "revoke", "ward7-pc01", "--reason", "x"]).await;
    out.failure(&["permission denied", "engineer, admin"]);
    assert_eq!(server.device_json("ward7-pc01").await["status"], "active");

    // The roles that may create tokens can.
    for role in [Role::Engineer, Role::Admin] {
        let out = server.ctl_run(role, &["token", "create"]).await.success();
        assert!(out.first_line().starts_with("cust_enr_"), "{out}");
    }
}

#[tokio::test]
async fn health_needs_no_client_certificate() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let mut health = HealthClient::new(anonymous_channel(&server.url(), &server.ca_pem()).await);
    for service in ["", "custodian.v1.Agent", "custodian.v1.Operator"] {
        let res = health.check(HealthCheckRequest { service: service.to_owned() }).await.unwrap().into_inner();
        assert_eq!(res.status(), ServingStatus::Serving, "service {service:?}");
    }
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    // A second Custodian installation with its own CA, a device and operators.
    let other_dir = TestDir::new();
    let other = Server::start(other_dir.path()).await;
    let stranger = Machine::new(other_dir.path(), "elsewhere-pc01", "SN-9999");
    stranger.enroll_ok(&other).await;

    // The stranger's device certificate, trusting our server: the TLS
    // handshake or the first call fails, and nothing is stored.
    let creds = DeviceCredentials::load(stranger.state_dir()).trusting(server.ca_pem());
    if let Some(device) = RawDevice::try_connect(&server.url(), creds.clone()).await {
        let res = device.submit_one(creds.sign(&creds.report(2, "elsewhere-pc01"))).await;
        assert!(res.is_err(), "a certificate from another CA was accepted: {res:?}");
    }
    // The other installation's admin (trusting our server) cannot operate ours.
    let mixed = dir.join("other-admin");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::write(mixed.join("ca.pem"), server.ca_pem()).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(other.identity(Role::Admin).join(file), mixed.join(file)).unwrap();
    }
    let mut ctl = crate::Bin::Ctl.command();
    ctl.args(["--server", &server.url(), "--identity"]).arg(&mixed).args(["device", "list"]);
    // The server refuses the certificate at the end of the TLS handshake;
    // depending on timing the client sees a transport error or a cancelled
    // call, but never a complaint about the server's own certificate.
    let out = crate::process::run(ctl).await.failure(&[]);
    assert!(!out.stdout.contains("ward7-pc01") && !out.stderr.contains("invalid peer certificate"), "{out}");

    let list = server.ctl_run(Role::Admin, &["device", "list", "--json"]).await.success();
    assert!(!list.stdout.contains("elsewhere-pc01"), "{list}");
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1));
}

/// The renewal grace is for devices cut off from the server: an operator's
/// expired certificate is refused at the handshake, as before.
#[tokio::test]
async fn an_expired_operator_certificate_is_refused() {
    let dir = TestDir::new();
    let mut server = Server::init(dir.path()).await;
    server.configure("operator_cert_lifetime", "1s");
    let short_lived = dir.join("short-lived");
    let mut issue = crate::process::Bin::Server.command();
    issue
        .args(["operator", "issue", "--data-dir"])
        .arg(server.data_dir())
        .args(["--name", "temp", "--role", "service-desk", "--out"])
        .arg(&short_lived);
    crate::process::run(issue).await.success();
    server.serve().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut ctl = crate::process::Bin::Ctl.command();
    ctl.arg("--server").arg(server.url()).arg("--identity").arg(&short_lived).args(["device", "list"]);
    let out = crate::process::run(ctl).await;
    assert!(!out.status.success(), "an expired operator certificate was accepted:\n{out}");
    // The same call with a valid operator certificate works.
    server.ctl_run(Role::ServiceDesk, &["device", "list"]).await.success();
}
