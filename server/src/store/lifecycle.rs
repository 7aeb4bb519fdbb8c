//! The register and the lifecycle in the store: devices added before they
//! enrol, matching an enrolling machine to its register entry, lifecycle
//! transitions, and the identifiers a device is found by. Each change is
//! written in one transaction with its audit event.

use std::collections::BTreeSet;
use std::ops::{Bound, ControlFlow};

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use sled::Transactional;

use super::{
    DeviceRecord, EnrollError, Store, StoreError, VersionedDevice, audit, decode, device_in, flatten_tx_error,
    put_device,
};
use crate::audit::event::{AuditEvent, EventKind};
use crate::lifecycle::LifecycleState;

/// A machine to add to the register, from `device add` or a CSV row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The CSV line it came from (1-based, counting the header), if any.
    pub line: Option<u64>,
    /// System serial number.
    pub serial: String,
    /// Asset tag.
    pub asset_tag: String,
    /// Model.
    pub model: String,
    /// Supplier.
    pub supplier: Option<String>,
    /// Purchase order reference.
    pub order_ref: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// `ordered` or `in_stock`.
    pub state: LifecycleState,
}

/// Why nothing was added: every problem found, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nothing was added: {}", problems.iter().map(|(line, p)| match line { Some(l) => format!("line {l}: {p}"), None => p.clone() }).collect::<Vec<_>>().join("; "))]
pub struct AddDevicesError {
    /// `(line, problem)` for each bad row.
    pub problems: Vec<(Option<u64>, String)>,
}

/// What a transition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The device moved; here it is now, and the audit event's sequence number.
    Moved(Box<DeviceRecord>, u64),
    /// The device was no longer in the expected state (someone moved it
    /// meanwhile); nothing was written.
    StateChanged(LifecycleState),
    /// The device reported after its guard was checked (its last accepted
    /// report is now this one, not the expected one); nothing was written.
    ReportedMeanwhile {
        /// Its last accepted report's sequence number now.
        last_seq: u64,
    },
}

/// What a transition checks inside its transaction before writing anything:
/// what the caller saw when it decided the move was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedDevice {
    /// The state the device must still be in.
    pub state: LifecycleState,
    /// The last accepted report (`last_seq`) the guard was checked on, which
    /// must still be the latest (`None`: any).
    pub last_seq: Option<u64>,
}

/// Attributes a transition sets (empty: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionAttributes {
    /// Site.
    pub site: Option<String>,
    /// Ward.
    pub ward: Option<String>,
    /// Who has it.
    pub assigned_to: Option<String>,
}

/// Every identifier but the hostname a device is found by, lowercase.
pub(super) fn identifiers(device: &DeviceRecord) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for id in device.serial.iter().chain(device.asset_tag.iter()).chain(device.macs.iter()) {
        let id = id.trim().to_lowercase();
        if !id.is_empty() {
            ids.insert(id);
        }
    }
    ids
}

/// Normalises a MAC address to lowercase colon-separated form, if `text` is one.
pub fn normalise_mac(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) || text.len() < 12 {
        return None;
    }
    let hex = hex.to_lowercase();
    Some(hex.as_bytes().chunks(2).map(|pair| String::from_utf8_lossy(pair).into_owned()).collect::<Vec<_>>().join(":"))
}

/// The MAC addresses in a (verified) report's inventory. Zero and empty
/// addresses (loopback) are left out.
pub(super) fn macs_in_inventory(inventory: &pb::Inventory) -> Vec<String> {
    let mut macs: Vec<String> = inventory
        .network
        .iter()
        .filter_map(|nic| normalise_mac(&nic.mac))
        .filter(|mac| mac != "00:00:00:00:00:00")
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// The record an enrolling machine gets: a new one in `staged`, or its
/// register entry taken over (keeping the register's facts, and moving from
/// `ordered` or `in_stock` to `staged`: it has been imaged and has an
/// agent). Returns the record and the state it left, if it changed.
pub(super) fn enrolled_record(
    device: &DeviceRecord,
    existing: Option<&DeviceRecord>,
    token_site: Option<String>,
) -> (DeviceRecord, Option<LifecycleState>) {
    match existing {
        None => (DeviceRecord { site: token_site, state: LifecycleState::Staged, ..device.clone() }, None),
        Some(existing) => {
            let state = match existing.state {
                LifecycleState::Ordered | LifecycleState::InStock => LifecycleState::Staged,
                other => other,
            };
            let merged = DeviceRecord {
                public_key: device.public_key,
                hostname: device.hostname.clone(),
                serial: device.serial.clone().or_else(|| existing.serial.clone()),
                site: token_site.or_else(|| existing.site.clone()),
                enrolled_at_ms: device.enrolled_at_ms,
                cert_not_after_ms: device.cert_not_after_ms,
                state,
                state_changed_at_ms: if state != existing.state {
                    Some(device.enrolled_at_ms)
                } else {
                    existing.state_changed_at_ms
                },
                ..existing.clone()
            };
            (merged, (state != existing.state).then_some(existing.state))
        }
    }
}

fn state_byte(state: LifecycleState) -> u8 {
    LifecycleState::ALL.iter().position(|s| *s == state).expect("every state is in ALL") as u8
}

/// The facet index entry of a device: key state byte ‖ id; value three
/// length-prefixed (u16 big-endian) lowercase strings: site, model,
/// registered model.
pub(super) fn facet_entry(device: &DeviceRecord) -> (Vec<u8>, Vec<u8>) {
    let mut key = Vec::with_capacity(17);
    key.push(state_byte(device.state));
    key.extend_from_slice(device.device_id.as_bytes());
    let mut value = Vec::new();
    for text in [&device.site, &device.model, &device.registered_model] {
        let text = text.as_deref().unwrap_or("").to_lowercase();
        let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
        value.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        value.extend_from_slice(bytes);
    }
    (key, value)
}

fn parse_facets<'a>(key: &[u8], value: &'a [u8]) -> Result<(DeviceId, DeviceFacets<'a>), StoreError> {
    let bad = || StoreError::Decode { tree: "idx_facets", error: "malformed entry".to_owned() };
    if key.len() != 17 {
        return Err(bad());
    }
    let state = *LifecycleState::ALL.get(key[0] as usize).ok_or_else(bad)?;
    let device_id = DeviceId::from_bytes(key[1..].try_into().expect("16 bytes"));
    let mut rest = value;
    let mut texts: [Option<&'a str>; 3] = [None; 3];
    for text in &mut texts {
        if rest.len() < 2 {
            return Err(bad());
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let bytes = rest.get(2..2 + len).ok_or_else(bad)?;
        let s = std::str::from_utf8(bytes).map_err(|_| bad())?;
        *text = (!s.is_empty()).then_some(s);
        rest = &rest[2 + len..];
    }
    let [site, model, registered_model] = texts;
    Ok((device_id, DeviceFacets { state, site, model, registered_model }))
}

fn same(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.trim().eq_ignore_ascii_case(b.trim()))
}

/// The facets `device list` filters on, read from the facet index
/// (strings lowercase).
#[derive(Debug)]
pub struct DeviceFacets<'a> {
    /// Lifecycle state.
    pub state: LifecycleState,
    /// Site.
    pub site: Option<&'a str>,
    /// Model from the latest report.
    pub model: Option<&'a str>,
    /// Model as registered.
    pub registered_model: Option<&'a str>,
}

/// A position in the facet index (state byte ‖ device id): a paged list
/// resumes after the last entry the previous page examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FacetKey([u8; 17]);

impl FacetKey {
    /// Its 17 bytes, as stored.
    pub fn as_bytes(&self) -> &[u8; 17] {
        &self.0
    }

    /// The key from its bytes, if they are 17 long and start with a known
    /// state; the device need not exist.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 17] = bytes.try_into().ok()?;
        LifecycleState::ALL.get(usize::from(bytes[0]))?;
        Some(Self(bytes))
    }

    /// The lifecycle state its entry is filed under.
    pub fn state(&self) -> LifecycleState {
        LifecycleState::ALL[usize::from(self.0[0])]
    }
}

/// How a scan of the facet index ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacetScanEnd {
    /// The index (or the state's part of it) has no more entries.
    Finished,
    /// Stopped with entries left: a later scan resumes after this one.
    StoppedAfter(FacetKey),
}

impl Store {
    /// Every device whose facets pass `filter` (only devices in `state`, if
    /// given), ordered by hostname then id: [`Store::scan_devices_by_facets`]
    /// to the end, then sorted.
    pub fn list_devices_by_facets(
        &self,
        state: Option<LifecycleState>,
        filter: impl Fn(&DeviceFacets<'_>) -> bool,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut devices = Vec::new();
        self.scan_devices_by_facets(state, None, usize::MAX, filter, |device| {
            devices.push(device);
            Ok::<_, StoreError>(ControlFlow::Continue(()))
        })?;
        devices.sort_by_cached_key(|d: &DeviceRecord| (d.hostname.to_lowercase(), d.device_id));
        Ok(devices)
    }

    /// Walks the compact facet index (`idx_facets`: state byte ‖ device id →
    /// lowercase site, model and registered model) in key order, from just
    /// after `after` (or the start), over only `state`'s entries if given.
    /// Each device whose facets pass `filter` is decoded in full and handed
    /// to `visit`. The walk stops when `visit` breaks or `max_entries`
    /// entries have been examined (whether they passed or not), saying where
    /// to resume, or when the entries run out.
    pub fn scan_devices_by_facets<E: From<StoreError>>(
        &self,
        state: Option<LifecycleState>,
        after: Option<FacetKey>,
        max_entries: usize,
        filter: impl Fn(&DeviceFacets<'_>) -> bool,
        mut visit: impl FnMut(DeviceRecord) -> Result<ControlFlow<()>, E>,
    ) -> Result<FacetScanEnd, E> {
        let prefix: Vec<u8> = state.map(|s| vec![state_byte(s)]).unwrap_or_default();
        let start = match after {
            // A key before the state's entries resumes at their start; one
            // after them finds nothing.
            Some(key) if key.0.as_slice() >= prefix.as_slice() => Bound::Excluded(key.0.to_vec()),
            _ => Bound::Included(prefix),
        };
        let mut entries = self
            .idx_facets
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take_while(|item| match (state, item) {
                (Some(state), Ok((key, _))) => key.first() == Some(&state_byte(state)),
                _ => true,
            })
            .peekable();
        let mut n_examined = 0;
        while let Some(item) = entries.next() {
            let (key, value) = item.map_err(StoreError::from)?;
            let (device_id, facets) = parse_facets(&key, &value)?;
            n_examined += 1;
            let mut flow = ControlFlow::Continue(());
            if filter(&facets) {
                let device = self.device(device_id)?.ok_or_else(|| StoreError::Decode {
                    tree: "idx_facets",
                    error: format!("indexed device {device_id} is missing"),
                })?;
                flow = visit(device)?;
            }
            if flow.is_break() || n_examined >= max_entries {
                if entries.peek().is_none() {
                    break;
                }
                let key = FacetKey::from_bytes(&key).expect("parse_facets checked the key");
                return Ok(FacetScanEnd::StoppedAfter(key));
            }
        }
        Ok(FacetScanEnd::Finished)
    }

    /// Builds the facet index from the device records if it is empty (a
    /// store written before it existed).
    pub(super) fn build_facet_index_if_missing(&self) -> Result<(), StoreError> {
        if !self.idx_facets.is_empty() || self.devices.is_empty() {
            return Ok(());
        }
        for bytes in self.devices.iter().values() {
            let device: DeviceRecord = decode::<VersionedDevice>("devices", &bytes?)?.into();
            let (key, value) = facet_entry(&device);
            self.idx_facets.insert(key, value)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Every device that passes `filter`, ordered by hostname then id. Only
    /// the devices that pass are sorted.
    pub fn list_devices_where(&self, filter: impl Fn(&DeviceRecord) -> bool) -> Result<Vec<DeviceRecord>, StoreError> {
        drop(self.settled()?);
        let mut devices = Vec::new();
        for bytes in self.devices.iter().values() {
            let device: DeviceRecord = decode::<VersionedDevice>("devices", &bytes?)?.into();
            if filter(&device) {
                devices.push(device);
            }
        }
        devices.sort_by_cached_key(|d| (d.hostname.to_lowercase(), d.device_id));
        Ok(devices)
    }

    /// The unenrolled register entry an enrolling machine becomes: the one
    /// the token's asset tag names, else the one whose serial matches.
    pub fn register_match(
        &self,
        serial: Option<&str>,
        token_asset_tag: Option<&str>,
    ) -> Result<Result<Option<DeviceId>, EnrollError>, StoreError> {
        if let Some(tag) = token_asset_tag {
            let found: Vec<DeviceRecord> = self
                .find_devices(tag)?
                .into_iter()
                .filter(|d| !d.is_enrolled() && same(d.asset_tag.as_deref(), tag))
                .collect();
            let [device] = found.as_slice() else {
                return Ok(Err(EnrollError::AssetTagUnavailable(tag.to_owned())));
            };
            if let (Some(registered), Some(reported)) = (device.serial.as_deref(), serial)
                && !same(Some(registered), reported)
            {
                return Ok(Err(EnrollError::SerialMismatch {
                    asset_tag: tag.to_owned(),
                    registered: registered.to_owned(),
                    reported: reported.to_owned(),
                }));
            }
            return Ok(Ok(Some(device.device_id)));
        }
        let Some(serial) = serial.filter(|s| !s.trim().is_empty()) else {
            return Ok(Ok(None));
        };
        let found: Vec<DeviceId> = self
            .find_devices(serial)?
            .into_iter()
            .filter(|d| !d.is_enrolled() && same(d.serial.as_deref(), serial))
            .map(|d| d.device_id)
            .collect();
        Ok(Ok(if found.len() == 1 { Some(found[0]) } else { None }))
    }

    /// Adds machines to the register, all or none, each with a
    /// `device_added` event by `actor`. Every bad row is reported.
    pub fn add_devices(
        &self,
        new: &[NewDevice],
        actor: &str,
        now_ms: i64,
        source: &str,
    ) -> Result<Result<Vec<DeviceRecord>, AddDevicesError>, StoreError> {
        let mut problems = Vec::new();
        let mut serials = BTreeSet::new();
        let mut tags = BTreeSet::new();
        for row in new {
            let mut problem = |p: String| problems.push((row.line, p));
            for (field, value) in [("serial", &row.serial), ("asset_tag", &row.asset_tag), ("model", &row.model)] {
                if value.trim().is_empty() {
                    problem(format!("{field} is empty"));
                }
            }
            if !matches!(row.state, LifecycleState::Ordered | LifecycleState::InStock) {
                problem(format!("state must be ordered or in_stock, not {}", row.state));
            }
            if !row.serial.trim().is_empty() && !serials.insert(row.serial.trim().to_lowercase()) {
                problem(format!("serial {} appears twice", row.serial.trim()));
            }
            if !row.asset_tag.trim().is_empty() && !tags.insert(row.asset_tag.trim().to_lowercase()) {
                problem(format!("asset tag {} appears twice", row.asset_tag.trim()));
            }
            if !row.serial.trim().is_empty()
                && self.find_devices(&row.serial)?.iter().any(|d| same(d.serial.as_deref(), &row.serial))
            {
                problem(format!("a device with serial {} is already registered", row.serial.trim()));
            }
            if !row.asset_tag.trim().is_empty()
                && self.find_devices(&row.asset_tag)?.iter().any(|d| same(d.asset_tag.as_deref(), &row.asset_tag))
            {
                problem(format!("a device with asset tag {} is already registered", row.asset_tag.trim()));
            }
        }
        if !problems.is_empty() {
            return Ok(Err(AddDevicesError { problems }));
        }
        let records: Vec<DeviceRecord> = new.iter().map(|row| registered_record(row, now_ms)).collect();
        let events: Vec<AuditEvent> = new
            .iter()
            .zip(&records)
            .map(|(row, record)| {
                let mut event = AuditEvent::new(now_ms, actor, EventKind::DeviceAdded, Some(record.device_id))
                    .with_detail("serial", row.serial.trim())
                    .with_detail("asset_tag", row.asset_tag.trim())
                    .with_detail("model", row.model.trim())
                    .with_detail("source", source);
                event.to = Some(row.state.as_str().to_owned());
                for (key, value) in [("supplier", &row.supplier), ("order_ref", &row.order_ref), ("site", &row.site)] {
                    if let Some(value) = value {
                        event = event.with_detail(key, value.clone());
                    }
                }
                if let Some(line) = row.line {
                    event = event.with_detail("line", line.to_string());
                }
                event
            })
            .collect();
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        (&self.devices, &self.idx_hostname, &self.idx_serial, &self.idx_facets, &self.audit)
            .transaction(|(devices, idx_hostname, idx_serial, idx_facets, audit_tree)| {
                for (record, event) in records.iter().zip(&events) {
                    put_device(devices, idx_hostname, idx_serial, idx_facets, None, record)?;
                    audit::append(audit_tree, event.clone())?;
                }
                Ok(())
            })
            .map_err(flatten_tx_error)?;
        Ok(Ok(records))
    }

    /// Moves a device from `expected` to `to`, setting `attributes`, with
    /// `event` (whose `from`/`to` are filled in here), in one transaction.
    /// Moving to `disposed` also revokes its certificate.
    pub fn transition(
        &self,
        device_id: DeviceId,
        expected: LifecycleState,
        to: LifecycleState,
        attributes: &TransitionAttributes,
        event: AuditEvent,
    ) -> Result<Option<TransitionOutcome>, StoreError> {
        let expected = ExpectedDevice { state: expected, last_seq: None };
        self.transition_recording(device_id, expected, to, attributes, event, None)
    }

    /// [`Store::transition`], also checking that the device has not
    /// reported since `expected.last_seq` (if given), and storing how the
    /// machine left (its `disposal`, with the event's sequence number) in the
    /// same transaction.
    pub fn transition_recording(
        &self,
        device_id: DeviceId,
        expected: ExpectedDevice,
        to: LifecycleState,
        attributes: &TransitionAttributes,
        event: AuditEvent,
        disposal: Option<&crate::disposal::Disposal>,
    ) -> Result<Option<TransitionOutcome>, StoreError> {
        let disposals = self.db.open_tree(super::disposal::DISPOSALS)?;
        let mut event = event;
        event.from = Some(expected.state.as_str().to_owned());
        event.to = Some(to.as_str().to_owned());
        for (key, value) in
            [("site", &attributes.site), ("ward", &attributes.ward), ("assigned_to", &attributes.assigned_to)]
        {
            if let Some(value) = value {
                event = event.with_detail(key, value.clone());
            }
        }
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        (&self.devices, &self.idx_hostname, &self.idx_serial, &self.idx_facets, &self.audit, &disposals)
            .transaction(|(devices, idx_hostname, idx_serial, idx_facets, audit_tree, disposals)| {
                let Some(old) = device_in(devices, device_id)? else {
                    return Ok(None);
                };
                if old.state != expected.state {
                    return Ok(Some(TransitionOutcome::StateChanged(old.state)));
                }
                // The guard was checked on the report that was latest then:
                // one accepted since (say, showing encryption turned off)
                // was not seen by it.
                if expected.last_seq.is_some_and(|seq| seq != old.last_seq) {
                    return Ok(Some(TransitionOutcome::ReportedMeanwhile { last_seq: old.last_seq }));
                }
                let mut device = old.clone();
                device.state = to;
                device.state_changed_at_ms = Some(event.time_ms);
                if let Some(site) = &attributes.site {
                    device.site = Some(site.clone());
                }
                if let Some(ward) = &attributes.ward {
                    device.ward = Some(ward.clone());
                }
                if let Some(who) = &attributes.assigned_to {
                    device.assigned_to = Some(who.clone());
                }
                if to == LifecycleState::Disposed && device.revocation.is_none() {
                    device.revocation = Some(super::Revocation {
                        revoked_at_ms: event.time_ms,
                        revoked_by: event.actor.clone(),
                        reason: "disposed".to_owned(),
                    });
                }
                put_device(devices, idx_hostname, idx_serial, idx_facets, Some(&old), &device)?;
                let seq = audit::append(audit_tree, event.clone())?;
                if let Some(disposal) = disposal {
                    let disposal = crate::disposal::Disposal { audit_seq: seq, ..disposal.clone() };
                    disposals.insert(
                        device_id.as_bytes(),
                        super::encode(&super::disposal::VersionedDisposal::V1(disposal)),
                    )?;
                }
                Ok(Some(TransitionOutcome::Moved(Box::new(device), seq)))
            })
            .map_err(flatten_tx_error)
    }
}

fn registered_record(row: &NewDevice, now_ms: i64) -> DeviceRecord {
    let text = |s: &Option<String>| s.as_ref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    DeviceRecord {
        device_id: DeviceId::random(),
        public_key: [0; 32],
        hostname: String::new(),
        serial: Some(row.serial.trim().to_owned()),
        vendor: None,
        model: None,
        site: text(&row.site),
        enrolled_at_ms: 0,
        last_seen_ms: None,
        last_seq: 0,
        n_reports: 0,
        cert_not_after_ms: 0,
        revocation: None,
        state: row.state,
        asset_tag: Some(row.asset_tag.trim().to_owned()),
        registered_model: Some(row.model.trim().to_owned()),
        supplier: text(&row.supplier),
        order_ref: text(&row.order_ref),
        ward: None,
        assigned_to: None,
        macs: Vec::new(),
        registered_at_ms: Some(now_ms),
        state_changed_at_ms: Some(now_ms),
        kind: super::DeviceKind::Workstation,
        inventory_verdict: None,
        last_report: None,
    }
}

#[cfg(test)]
mod tests;
