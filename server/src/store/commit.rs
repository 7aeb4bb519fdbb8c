//! Committing verified reports: a whole group in one sled transaction.
//!
//! The intake's committer gathers every report waiting and hands them here
//! together. One transaction per group instead of one per report saves sled's
//! per-transaction work, the audit frontier is read and written once per
//! group, and each device's record is decoded and written once however many
//! of its reports the group holds; a record whose hot fields alone changed
//! is not written at all, but deferred to `device_hot` (see `hot.rs`). The
//! group's envelopes are appended to the envelope log, and synced, before
//! the transaction that points at them.
//! Each report keeps the outcome it would have had if committed alone, in
//! order.

use std::borrow::Cow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet};

use custodian_proto::identity::DeviceId;
use serde::Serialize;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{
    CommitOutcome, CommitReportError, DeviceRecord, IncomingReport, ReportContent, Store, StoreError, StoredEnvelope,
    audit, device_in, envelopes, flatten_tx_error, hot, inventory, inventory_change_event, lifecycle, put_device,
    replay_outcome, report_index, report_key,
};
use crate::audit::event::{AuditEvent, EventKind, Evidence};

/// The outcome of each report of a group, in order.
pub type CommitOutcomes = Vec<Result<CommitOutcome, CommitReportError>>;

/// Serialises exactly as `VersionedEnvelope::V1` does, without copying the envelope.
#[derive(Serialize)]
enum VersionedEnvelopeRef<'a> {
    V1(&'a StoredEnvelope),
}

/// What can be worked out about a report before its transaction (which sled
/// may run more than once): encodings, hashes and its audit event. The
/// intake prepares reports as they are queued (on the verifier thread, or a
/// handler's), so that the one committer thread does only what must be
/// serial.
pub struct Prepared {
    /// The stored envelope's encoding, for the envelope log.
    envelope: Vec<u8>,
    macs: Vec<String>,
    /// A full inventory's encryption verdict, for the device record.
    verdict: Option<super::InventoryVerdict>,
    /// Its `report_accepted` event, sequence number not yet assigned.
    event: AuditEvent,
}

impl Prepared {
    /// Prepares `report` for [`Store::commit_prepared`].
    pub fn new(report: &IncomingReport) -> Self {
        let (macs, verdict) = match &report.content {
            ReportContent::Inventory { inventory, sha256 } => (
                lifecycle::macs_in_inventory(inventory),
                Some(super::InventoryVerdict::of(inventory, report.seq, *sha256, report.envelope.received_at_ms)),
            ),
            ReportContent::Heartbeat { .. } => (Vec::new(), None),
        };
        let mut event = AuditEvent::new(
            report.envelope.received_at_ms,
            AuditEvent::device_actor(report.device_id),
            EventKind::ReportAccepted,
            Some(report.device_id),
        )
        .with_detail("report_seq", report.seq.to_string());
        event.evidence.push(Evidence::of("report_payload", &report.envelope.payload));
        let envelope =
            rmp_serde::to_vec_named(&VersionedEnvelopeRef::V1(&report.envelope)).expect("records always serialise");
        Self { envelope, macs, verdict, event }
    }
}

/// A device's record within one transaction: as stored in `devices` (the
/// committer's copy, or read in this transaction), and as the group's
/// reports so far have left it.
struct CachedDevice<'h> {
    stored: Cow<'h, DeviceRecord>,
    current: DeviceRecord,
    /// Whether this group changed it.
    changed: bool,
}

/// What a group's transaction did to a device, for the committer's copies.
struct Touched {
    device_id: DeviceId,
    /// The record as read from `devices` in the transaction, if it was.
    read: Option<DeviceRecord>,
    current: DeviceRecord,
    /// Whether the transaction wrote it whole.
    written: bool,
}

/// The trees a report touches, inside the transaction.
struct Trees<'t> {
    /// For the envelope log, which a resent report is compared against.
    store: &'t Store,
    /// The committer's device records, read before `devices`.
    hot: &'t hot::HotDevices,
    devices: &'t TransactionalTree,
    /// Report records from before `report_groups`, for resends of those.
    reports: &'t TransactionalTree,
    report_groups: &'t TransactionalTree,
    report_milestones: &'t TransactionalTree,
    inventory_latest: &'t TransactionalTree,
    inventory_changes: &'t TransactionalTree,
    audit: &'t TransactionalTree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Stores verified reports in one transaction, refusing replays;
    /// identical resends are reported as duplicates and change nothing. The
    /// outcome of each report, in order, is what it would be if the reports
    /// were committed one after another. Not durable until [`Store::flush`].
    ///
    /// A storage or decoding failure fails the whole group and stores none
    /// of it.
    pub fn commit_reports(&self, reports: &[&IncomingReport]) -> Result<CommitOutcomes, StoreError> {
        let prepared: Vec<Prepared> = reports.iter().map(|report| Prepared::new(report)).collect();
        let pairs: Vec<(&IncomingReport, &Prepared)> = reports.iter().copied().zip(&prepared).collect();
        self.commit_prepared(&pairs)
    }

    /// [`Store::commit_reports`] for reports already prepared, each with its
    /// own [`Prepared`].
    pub fn commit_prepared(&self, reports: &[(&IncomingReport, &Prepared)]) -> Result<CommitOutcomes, StoreError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        // Envelopes go to the log, durably, before the transaction that
        // points at them can commit (and sled can persist it on its own).
        // Those the transaction then refuses (resends) are never pointed at.
        let encoded: Vec<&[u8]> = reports.iter().map(|(_, prepared)| prepared.envelope.as_slice()).collect();
        let pointers = self.envelopes.append_durable(&encoded)?;
        let trees = (
            &self.devices,
            &self.idx_hostname,
            &self.idx_serial,
            &self.idx_facets,
            &self.reports,
            &self.report_groups,
            &self.report_milestones,
            &self.inventory_latest,
            &self.inventory_changes,
            &self.audit,
            &self.device_hot,
        );
        let mut hot = self.hot_devices()?;
        // Every so often this group writes every deferred record, so that
        // `device_hot` stays short and the committer's copies few.
        let settle = hot.pending.len() + 1 >= hot::SETTLE_EVERY_GROUPS || hot.devices.len() >= hot::MAX_CACHED_DEVICES;
        let _gate = self.transaction_gate();
        let res = trees.transaction(
            |(
                devices,
                idx_hostname,
                idx_serial,
                idx_facets,
                reports_tree,
                report_groups,
                report_milestones,
                inventory_latest,
                inventory_changes,
                audit,
                device_hot,
            )| {
                let trees = Trees {
                    store: self,
                    hot: &hot,
                    devices,
                    reports: reports_tree,
                    report_groups,
                    report_milestones,
                    inventory_latest,
                    inventory_changes,
                    audit,
                };
                // Everything below starts afresh on each run of the closure.
                let mut cache: HashMap<DeviceId, Option<CachedDevice<'_>>> = HashMap::new();
                let mut log = audit::Appender::load(audit)?;
                let group_key = log.next_seq();
                let mut group = report_index::Group::new(group_key);
                let mut outcomes = Vec::with_capacity(reports.len());
                for ((report, prepared), pointer) in reports.iter().zip(&pointers) {
                    let mut open = Open { cache: &mut cache, log: &mut log, group: &mut group };
                    outcomes.push(commit_one(&trees, &mut open, report, prepared, *pointer)?);
                }
                group.store(report_groups)?;
                let mut touched = Vec::with_capacity(cache.len());
                let mut deferred = Vec::new();
                for (device_id, cached) in cache {
                    let Some(CachedDevice { stored, current, changed }) = cached else { continue };
                    // Unchanged by this group, a record may still differ
                    // from `devices` by what earlier groups deferred.
                    let dirty = current != *stored;
                    let written = dirty && (settle || (changed && !hot::differs_only_in_hot_fields(&stored, &current)));
                    if written {
                        put_device(devices, idx_hostname, idx_serial, idx_facets, Some(&stored), &current)?;
                    } else if changed && dirty {
                        deferred.push(hot::HotFieldsV1::of(&current));
                    }
                    let read = match stored {
                        Cow::Owned(read) => Some(read),
                        Cow::Borrowed(_) => None,
                    };
                    touched.push(Touched { device_id, read, current, written });
                }
                if settle {
                    // Those deferred by earlier groups, and not in this one.
                    let in_group: HashSet<DeviceId> = touched.iter().map(|t| t.device_id).collect();
                    for (device_id, cached) in &hot.devices {
                        if cached.current != cached.durable && !in_group.contains(device_id) {
                            put_device(
                                devices,
                                idx_hostname,
                                idx_serial,
                                idx_facets,
                                Some(&cached.durable),
                                &cached.current,
                            )?;
                        }
                    }
                    for key in &hot.pending {
                        device_hot.remove(&key.to_be_bytes())?;
                    }
                }
                let deferred_key = (!settle && !deferred.is_empty()).then_some(group_key);
                if let Some(key) = deferred_key {
                    device_hot.insert(&key.to_be_bytes(), hot::encode_group(deferred))?;
                }
                log.store(audit)?;
                Ok((outcomes, touched, deferred_key))
            },
        );
        let (outcomes, touched, deferred_key) = res.map_err(flatten_tx_error)?;
        remember(&mut hot, touched, settle, deferred_key);
        Ok(outcomes)
    }
}

/// Brings the committer's device records up to date with a committed group,
/// which wrote a `device_hot` record under `deferred_key` if it has one.
fn remember(hot: &mut hot::HotDevices, touched: Vec<Touched>, settled: bool, deferred_key: Option<u64>) {
    if settled {
        // Everything is as stored; start afresh, which also bounds the memory.
        hot.devices.clear();
        hot.pending.clear();
        return;
    }
    for Touched { device_id, read, current, written } in touched {
        match hot.devices.entry(device_id) {
            MapEntry::Occupied(mut cached) => {
                let cached = cached.get_mut();
                if written {
                    cached.durable.clone_from(&current);
                }
                cached.current = current;
            }
            MapEntry::Vacant(slot) => {
                let durable = if written { current.clone() } else { read.expect("read in the transaction") };
                slot.insert(hot::Cached { durable, current });
            }
        }
    }
    hot.pending.extend(deferred_key);
}

/// What the group's transaction has changed so far and writes at the end:
/// device records, audit events and report entries.
struct Open<'a, 'h> {
    cache: &'a mut HashMap<DeviceId, Option<CachedDevice<'h>>>,
    log: &'a mut audit::Appender,
    group: &'a mut report_index::Group,
}

/// One report's part of the group's transaction. Device records are changed
/// in the cache and written by the caller at the end, as are the audit
/// events and report entries.
fn commit_one<'t>(
    trees: &Trees<'t>,
    open: &mut Open<'_, 't>,
    report: &IncomingReport,
    prepared: &Prepared,
    pointer: envelopes::Pointer,
) -> TxResult<Result<CommitOutcome, CommitReportError>> {
    let device_id = report.device_id;
    let cached = match open.cache.get_mut(&device_id) {
        Some(cached) => cached,
        None => {
            let loaded = match trees.hot.devices.get(&device_id) {
                Some(cached) => Some(CachedDevice {
                    stored: Cow::Borrowed(&cached.durable),
                    current: cached.current.clone(),
                    changed: false,
                }),
                None => device_in(trees.devices, device_id)?.map(|stored| CachedDevice {
                    current: stored.clone(),
                    stored: Cow::Owned(stored),
                    changed: false,
                }),
            };
            open.cache.entry(device_id).or_insert(loaded)
        }
    };
    let Some(CachedDevice { current: device, changed, .. }) = cached else {
        return Ok(Err(CommitReportError::UnknownDevice(device_id)));
    };
    if device.revocation.is_some() {
        return Ok(Err(CommitReportError::Revoked(device_id)));
    }
    if device.state.refuses_device() {
        return Ok(Err(CommitReportError::Refused { device_id, state: device.state }));
    }
    if report.seq <= device.last_seq {
        // Sees this group's own entries: a resend within the group is a duplicate.
        let start = report_index::Group::start_for(
            trees.report_milestones,
            device_id,
            report.seq,
            device.last_seq,
            device.last_report,
        )?;
        let stored = match open.group.find(trees.report_groups, start, report.seq)? {
            Some(entry) => {
                Some(trees.store.stored_envelope(entry.pointer).map_err(ConflictableTransactionError::Abort)?)
            }
            None => match trees.reports.get(report_key(device_id, report.seq))? {
                Some(stored) => {
                    Some(trees.store.decode_report_record(&stored).map_err(ConflictableTransactionError::Abort)?.0)
                }
                None => None,
            },
        };
        return Ok(replay_outcome(stored.as_ref(), &report.envelope, report.seq, device.last_seq));
    }
    let applied = inventory::apply(
        trees.inventory_latest,
        trees.inventory_changes,
        device.inventory_verdict.as_ref().and_then(|verdict| verdict.sha256),
        device_id,
        report.seq,
        report.envelope.received_at_ms,
        &report.content,
    )?;
    *changed = true;
    let previous_seq = device.last_seq;
    device.last_seq = report.seq;
    device.n_reports += 1;
    device.last_seen_ms = Some(report.envelope.received_at_ms);
    if let ReportContent::Inventory { .. } = report.content {
        device.inventory_verdict.clone_from(&prepared.verdict);
        device.hostname.clone_from(&report.hostname);
        if report.serial.is_some() {
            device.serial.clone_from(&report.serial);
        }
        device.vendor.clone_from(&report.vendor);
        device.model.clone_from(&report.model);
    }
    if !prepared.macs.is_empty() {
        device.macs.clone_from(&prepared.macs);
    }
    // The report's own entry names its event, in place of a history index
    // entry: one insert fewer per report.
    let audit_seq = open.log.append_unindexed(prepared.event.clone());
    let entry = report_index::Entry { device_id, seq: report.seq, audit_seq, pointer, prev: device.last_report };
    let locator = open.group.push(entry);
    device.last_report = Some(locator);
    report_index::record_milestone(trees.report_milestones, device_id, report.seq, previous_seq, locator)?;
    // Changes IG must see (a disk gone, encryption lost) are audit events of
    // their own, in the same transaction.
    for change in applied.changes.iter().filter(|c| c.change.flag.is_some()) {
        open.log.append(trees.audit, inventory_change_event(change))?;
    }
    Ok(Ok(if applied.wants_full_inventory { CommitOutcome::AcceptedWantsInventory } else { CommitOutcome::Accepted }))
}

#[cfg(test)]
mod tests;
