//! `custodianctl disk`, `alerts` and `disposals`: destruction records, ghost
//! alerts and the disposal register. The subcommands are defined here so the
//! binary only names the groups.

use std::fmt::Write;

use clap::Subcommand;
use custodian_proto::v1 as pb;
use pb::disposal_client::DisposalClient;

use super::{Ctl, format_time, status_error};

/// `custodianctl disk ...`.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Record that a disk was physically destroyed (engineer or admin).
    Destroyed {
        /// The disk's serial number, as its inventory reports it.
        serial: String,
        /// shred, disintegrate, crush, degauss or incinerate.
        #[arg(long)]
        method: String,
        /// The contractor who destroyed it.
        #[arg(long)]
        contractor: String,
        /// The contractor's certificate of destruction reference.
        #[arg(long)]
        certificate_ref: String,
        /// When it was destroyed, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Who witnessed it.
        #[arg(long)]
        witness: String,
    },
}

/// `custodianctl alerts ...`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Open alerts: machines that called in after they were sanitised, disposed of or lost.
    List {
        /// Include acknowledged alerts.
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert, saying what was found or done (engineer, IG auditor or admin).
    Ack {
        /// The alert's id.
        id: u64,
        /// What was found or done (kept in the audit trail).
        #[arg(long)]
        note: String,
    },
}

/// `custodianctl disposals ...`.
#[derive(Debug, Subcommand)]
pub enum DisposalsCommand {
    /// The disposal register (IG auditor or admin).
    List {
        /// Only disposals on or after this date, YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
        /// As CSV.
        #[arg(long)]
        csv: bool,
    },
}

impl Ctl {
    fn disposal(&self) -> DisposalClient<tonic::transport::Channel> {
        DisposalClient::new(self.channel.clone())
    }
}

/// Runs `custodianctl disk ...`; returns what to print.
pub async fn run_disk(ctl: &Ctl, command: DiskCommand) -> anyhow::Result<String> {
    match command {
        DiskCommand::Destroyed { serial, method, contractor, certificate_ref, date, witness } => {
            let req = pb::RecordDestructionRequest { serial, method, contractor, certificate_ref, date, witness };
            let res = ctl.disposal().record_destruction(req).await.map_err(status_error)?.into_inner();
            let record = res.record.unwrap_or_default();
            Ok(format!(
                "disk {} recorded as destroyed ({} by {}, certificate {}, {} witnessed by {})\nrecord sha256 {} (audit event {})\n",
                record.serial,
                record.method,
                record.contractor,
                record.certificate_ref,
                record.date,
                record.witness,
                record.sha256,
                res.audit_seq
            ))
        }
    }
}

/// Runs `custodianctl alerts ...`; returns what to print.
pub async fn run_alerts(ctl: &Ctl, command: AlertsCommand) -> anyhow::Result<String> {
    match command {
        AlertsCommand::List { all } => {
            let res = ctl.disposal().list_alerts(pb::ListAlertsRequest { all }).await.map_err(status_error)?;
            Ok(render_alerts(&res.into_inner().alerts))
        }
        AlertsCommand::Ack { id, note } => {
            let req = pb::AcknowledgeAlertRequest { id, note };
            let res = ctl.disposal().acknowledge_alert(req).await.map_err(status_error)?.into_inner();
            Ok(format!("alert {id} acknowledged (audit event {})\n", res.audit_seq))
        }
    }
}

/// Runs `custodianctl disposals ...`; returns what to print.
pub async fn run_disposals(ctl: &Ctl, command: DisposalsCommand) -> anyhow::Result<String> {
    match command {
        DisposalsCommand::List { since, csv } => {
            let req = pb::ListDisposalsRequest { since: since.unwrap_or_default() };
            let res = ctl.disposal().list_disposals(req).await.map_err(status_error)?.into_inner();
            Ok(if csv { render_disposals_csv(&res.disposals) } else { render_disposals(&res.disposals) })
        }
    }
}

/// The alerts as a table, one per line.
pub(super) fn render_alerts(alerts: &[pb::Alert]) -> String {
    let mut out = String::new();
    for a in alerts {
        let status = if a.acknowledged_by.is_empty() {
            "OPEN".to_owned()
        } else {
            format!("acknowledged by {} at {}: {}", a.acknowledged_by, format_time(a.acknowledged_at_ms), a.note)
        };
        let _ = writeln!(
            out,
            "alert {}  severity {}  {} ({}) called in while {}; {} call(s), first {}, last {} (audit event {})  {status}",
            a.id,
            a.severity,
            if a.hostname.is_empty() { "-" } else { &a.hostname },
            a.device_id,
            a.state,
            a.calls,
            format_time(a.first_seen_ms),
            format_time(a.last_seen_ms),
            a.audit_seq
        );
    }
    let _ = writeln!(out, "{} alert(s)", alerts.len());
    out
}

/// The disposal register as a table.
pub(super) fn render_disposals(disposals: &[pb::DisposalEntry]) -> String {
    let mut out = String::new();
    for d in disposals {
        let _ = writeln!(
            out,
            "{}  {}  serial {}  asset {}  route {}  contractor {}  consignment {}  by {}  (audit event {})  {}  certificate sha256 {}",
            format_time(d.disposed_at_ms),
            if d.hostname.is_empty() { "-" } else { &d.hostname },
            d.serial,
            d.asset_tag,
            d.route,
            d.contractor,
            d.consignment_ref,
            d.disposed_by,
            d.audit_seq,
            d.device_id,
            if d.certificate_sha256.is_empty() { "-" } else { &d.certificate_sha256 }
        );
    }
    let _ = writeln!(out, "{} disposal(s)", disposals.len());
    out
}

/// The disposal register as CSV with a header row.
pub(super) fn render_disposals_csv(disposals: &[pb::DisposalEntry]) -> String {
    let mut out = String::from(
        "disposed_at,device_id,hostname,serial,asset_tag,route,contractor,consignment_ref,disposed_by,audit_seq,\
         certificate_sha256\n",
    );
    for d in disposals {
        let fields = [
            format_time(d.disposed_at_ms),
            d.device_id.clone(),
            d.hostname.clone(),
            d.serial.clone(),
            d.asset_tag.clone(),
            d.route.clone(),
            d.contractor.clone(),
            d.consignment_ref.clone(),
            d.disposed_by.clone(),
            d.audit_seq.to_string(),
            d.certificate_sha256.clone(),
        ];
        let _ =
            writeln!(out, "{}", fields.iter().map(|f| crate::spreadsheet::csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}

/// `custodianctl certificate ...`.
#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Write a disposed machine's certificate of sanitisation, its signature,
    /// the server's public key and the evidence into DIR (engineer, IG auditor or admin).
    Get {
        /// Device id, hostname, serial, asset tag or MAC.
        query: String,
        /// Directory to write (created; must not exist yet).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Check a certificate directory offline: the signature, every piece of
    /// evidence and the disposal event's inclusion proof.
    Verify {
        /// The directory `certificate get` wrote.
        dir: std::path::PathBuf,
    },
}

/// Runs `custodianctl certificate get`; returns what to print.
pub async fn get_certificate(ctl: &Ctl, query: &str, out: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;

    use crate::certificate::{CERTIFICATE_FILE, PUBLIC_KEY_FILE, SIGNATURE_FILE};
    let req = pb::GetCertificateRequest { query: query.to_owned() };
    let res = ctl.disposal().get_certificate(req).await.map_err(status_error)?.into_inner();
    std::fs::create_dir(out).with_context(|| format!("create {} (it must not exist yet)", out.display()))?;
    std::fs::create_dir(out.join("evidence")).context("create the evidence directory")?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        custodian_proto::files::write_public(&path, bytes).with_context(|| format!("write {}", path.display()))
    };
    write(CERTIFICATE_FILE, &res.certificate_json)?;
    write(SIGNATURE_FILE, &res.signature)?;
    write(PUBLIC_KEY_FILE, res.public_key_pem.as_bytes())?;
    let certificate: crate::certificate::Certificate =
        serde_json::from_slice(&res.certificate_json).context("parse the certificate the server sent")?;
    write("certificate.html", render_certificate_html(&certificate).as_bytes())?;
    for file in &res.evidence {
        let name = std::path::Path::new(&file.name);
        if !file.name.starts_with("evidence/") || name.components().count() != 2 || file.name.contains("..") {
            anyhow::bail!("the server sent an evidence file with an unsafe name {:?}", file.name);
        }
        write(&file.name, &file.content)?;
    }
    Ok(format!(
        "wrote {CERTIFICATE_FILE}, {SIGNATURE_FILE}, {PUBLIC_KEY_FILE}, certificate.html and {} evidence file(s) to {}\n",
        res.evidence.len(),
        out.display()
    ))
}

/// `custodianctl custody ...`.
#[derive(Debug, Subcommand)]
pub enum CustodyCommand {
    /// Custody manifests.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Match a contractor's return (CSV with a `serial` column) against a manifest
    /// (engineer, IG auditor or admin).
    Reconcile {
        /// The manifest's id.
        manifest: u64,
        /// The contractor's return.
        file: std::path::PathBuf,
    },
    /// Close a manifest whose reconciliation left nothing open (engineer, IG auditor or admin).
    Close {
        /// The manifest's id.
        manifest: u64,
    },
}

/// `custodianctl custody manifest ...`.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// List the machines and loose disks handed to a contractor in one
    /// collection, signed; writes manifest.json, its signature, the server's
    /// key and manifest.csv into DIR (engineer or admin).
    Create {
        /// The contractor.
        #[arg(long)]
        contractor: String,
        /// The collection or WEEE consignment reference.
        #[arg(long)]
        collection_ref: String,
        /// A machine handed over (id, hostname, serial, asset tag or MAC); repeat.
        #[arg(long = "machine")]
        machines: Vec<String>,
        /// A loose disk handed over, by serial; repeat.
        #[arg(long = "disk")]
        disks: Vec<String>,
        /// Directory to write (created; must not exist yet).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn render_manifest(res: &pb::ManifestResponse) -> String {
    let mut out = format!("custody manifest {}: {} (audit event {})\n", res.id, res.status, res.audit_seq);
    for (what, list) in [
        ("missing from the return", &res.missing),
        ("returned but never handed over", &res.unexpected),
        ("returned more than once", &res.duplicates),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "  {what}: {}", list.join(", "));
        }
    }
    out
}

/// Runs `custodianctl custody ...`; returns what to print.
pub async fn run_custody(ctl: &Ctl, command: CustodyCommand) -> anyhow::Result<String> {
    use anyhow::Context;
    match command {
        CustodyCommand::Manifest(ManifestCommand::Create { contractor, collection_ref, machines, disks, out }) => {
            let req = pb::CreateManifestRequest { contractor, collection_ref, machines, disks };
            let res = ctl.disposal().create_manifest(req).await.map_err(status_error)?.into_inner();
            std::fs::create_dir(&out).with_context(|| format!("create {} (it must not exist yet)", out.display()))?;
            let write = |name: &str, bytes: &[u8]| {
                let path = out.join(name);
                custodian_proto::files::write_public(&path, bytes).with_context(|| format!("write {}", path.display()))
            };
            write("manifest.json", &res.manifest_json)?;
            write("manifest.json.sig", &res.signature)?;
            write(crate::certificate::PUBLIC_KEY_FILE, res.public_key_pem.as_bytes())?;
            write("manifest.csv", res.csv.as_bytes())?;
            Ok(format!(
                "{}wrote manifest.json, manifest.json.sig, manifest.csv to {}\n",
                render_manifest(&res),
                out.display()
            ))
        }
        CustodyCommand::Reconcile { manifest, file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let text = String::from_utf8(bytes.clone()).context("the return file is not UTF-8 text")?;
            let serials =
                crate::custody::parse_return_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let req = pb::ReconcileManifestRequest {
                id: manifest,
                serials,
                source: file.display().to_string(),
                source_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            };
            let res = ctl.disposal().reconcile_manifest(req).await.map_err(status_error)?.into_inner();
            Ok(render_manifest(&res))
        }
        CustodyCommand::Close { manifest } => {
            let req = pb::CloseManifestRequest { id: manifest };
            let res = ctl.disposal().close_manifest(req).await.map_err(status_error)?.into_inner();
            Ok(render_manifest(&res))
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A printable HTML rendering of a certificate (not signed: the signed
/// document is `certificate.json`).
pub(super) fn render_certificate_html(certificate: &crate::certificate::Certificate) -> String {
    let e = |s: &str| html_escape(s);
    let d = &certificate.device;
    let p = &certificate.disposal;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Certificate of sanitisation</title>\n\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}\
         td,th{border:1px solid #444;padding:4px;text-align:left;vertical-align:top}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>Certificate of sanitisation</h1>");
    let _ = writeln!(
        out,
        "<p>Printable copy. The signed document is <code>certificate.json</code>; check it with \
         <code>custodianctl certificate verify</code> or OpenSSL (see docs/certificate.md).</p>"
    );
    let _ = writeln!(
        out,
        "<h2>Machine</h2><p>{} &middot; serial {} &middot; asset tag {} &middot; {} {} &middot; id {}</p>",
        e(&d.hostname),
        e(&d.serial),
        e(&d.asset_tag),
        e(&d.manufacturer),
        e(&d.model),
        e(&d.device_id)
    );
    let _ = writeln!(
        out,
        "<h2>Disposal</h2><p>Route {} &middot; contractor {} &middot; consignment {} &middot; {} by {} (audit event {})</p>",
        e(&p.route),
        e(&p.contractor),
        e(&p.consignment_ref),
        e(&format_time(p.disposed_at_ms)),
        e(&p.disposed_by),
        p.audit_seq
    );
    out.push_str(
        "<h2>Media</h2><table><tr><th>Media</th><th>Model / serial</th><th>Category</th><th>Method and tool</th>\
         <th>Verification</th><th>Person / organisation</th><th>Date</th><th>Destination</th><th>Evidence (SHA-256)</th></tr>\n",
    );
    for disk in &certificate.disks {
        let _ = writeln!(
            out,
            "<tr><td>{} ({} bytes)</td><td>{}<br>{}</td><td>{}</td><td>{}<br>{}</td><td>{}</td><td>{}<br>{}</td><td>{}</td>\
             <td>{}</td><td>{}<br><code>{}</code></td></tr>",
            e(&disk.media_type),
            disk.size_bytes,
            e(&disk.model),
            e(&disk.serial),
            e(&disk.category),
            e(&disk.method),
            e(&disk.tool),
            e(&disk.verification),
            e(&disk.person),
            e(&disk.organisation),
            e(&disk.date),
            e(&disk.destination),
            e(&disk.evidence.kind),
            e(&disk.evidence.sha256)
        );
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<h2>Audit</h2><p>Disposal event {} is included in the signed checkpoint:</p><pre>{}</pre></body></html>",
        certificate.audit.seq,
        e(&certificate.audit.checkpoint)
    );
    out
}
