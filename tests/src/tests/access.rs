//! Who may call what: identity comes from the client certificate, and each
//! call admits only the kinds of caller (device, operator role) it is for.

use custodian_proto::identity::Role;
use custodian_proto::v1 as pb;
use pb::agent_client::AgentClient;
use pb::operator_client::OperatorClient;
use tonic::Code;

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
    check_refused(operator.list_devices(pb::ListDevicesRequest {}).await, Code::Unauthenticated, NEEDS_CERT);
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

    check_refused(operator.list_devices(pb::ListDevicesRequest {}).await, Code::PermissionDenied, OPERATORS_ONLY);
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
