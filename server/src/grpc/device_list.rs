//! `device list`, one page per call: the filters and page token of a
//! `ListDevicesRequest`, and the page the Operator service answers with.
//!
//! Pages follow the facet index (state byte ‖ device id), so a page costs
//! the entries it examines, not the size of the register: it ends once it
//! holds `page_size` devices or [`MAX_PAGE_BYTES`] of summaries, or has read
//! [`MAX_RECORDS_PER_PAGE`] device records or examined
//! [`MAX_ENTRIES_PER_PAGE`] index entries. The page token names the last
//! entry examined. Clients that want the whole list fetch every page
//! and sort it themselves.

use std::ops::ControlFlow;

use custodian_proto::v1 as pb;
use prost::Message;
use tonic::Status;

use super::convert::to_pb_device;
use super::inventory::{add_compliance, passes};
use crate::lifecycle::LifecycleState;
use crate::store::{DeviceFacets, FacetKey, FacetScanEnd, Store};

/// Devices in a page when the request does not say (`page_size` 0).
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// The largest `page_size` accepted; a larger one is refused, not clamped,
/// so a client never silently gets less than it asked for per page.
pub const MAX_PAGE_SIZE: u32 = 5000;
/// Index entries one page examines at most, whether they match or not
/// (each costs well under a microsecond), so a filter that few devices pass
/// costs several short calls instead of one long one.
pub const MAX_ENTRIES_PER_PAGE: usize = 20_000;
/// Device records one page reads at most, whether they then pass the
/// stale and noncompliant filters or not (each costs microseconds).
pub const MAX_RECORDS_PER_PAGE: usize = 10_000;
/// Encoded summaries one page holds at most (a page ends once it reaches
/// this), well under the 4 MiB a gRPC client accepts by default.
pub const MAX_PAGE_BYTES: usize = 2 << 20;

/// The version byte that starts every page token this server issues.
const PAGE_TOKEN_VERSION: u8 = 1;

/// The bounds of one page.
#[derive(Debug, Clone, Copy)]
struct PageLimits {
    max_entries: usize,
    max_records: usize,
    max_bytes: usize,
}

const LIMITS: PageLimits =
    PageLimits { max_entries: MAX_ENTRIES_PER_PAGE, max_records: MAX_RECORDS_PER_PAGE, max_bytes: MAX_PAGE_BYTES };

/// One page of `device list`: what the `ListDevices` handler answers,
/// `now_ms` deciding staleness. The devices come in index order (state,
/// then id); `next_page_token` is empty on the last page.
pub fn list_devices_page(
    store: &Store,
    req: &pb::ListDevicesRequest,
    now_ms: i64,
) -> Result<pb::ListDevicesResponse, Status> {
    page_with_limits(store, req, now_ms, LIMITS)
}

fn page_with_limits(
    store: &Store,
    req: &pb::ListDevicesRequest,
    now_ms: i64,
    limits: PageLimits,
) -> Result<pb::ListDevicesResponse, Status> {
    let filter = DeviceFilter::from_request(req)?;
    let page_size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n > MAX_PAGE_SIZE => {
            return Err(Status::invalid_argument(format!(
                "page_size must be at most {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})"
            )));
        }
        n => n,
    } as usize;
    let after = parse_page_token(&req.page_token, filter.state)?;
    let mut devices = Vec::new();
    let (mut n_records, mut n_bytes) = (0, 0);
    let end = store.scan_devices_by_facets(
        filter.state,
        after,
        limits.max_entries,
        |facets| filter.matches(facets),
        |device| {
            n_records += 1;
            let mut summary = to_pb_device(&device);
            add_compliance(store, &mut summary, &device)?;
            if passes(&summary, req, now_ms) {
                n_bytes += summary.encoded_len();
                devices.push(summary);
            }
            let full = devices.len() >= page_size || n_bytes >= limits.max_bytes || n_records >= limits.max_records;
            Ok::<_, Status>(if full { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        },
    )?;
    let next_page_token = match end {
        FacetScanEnd::Finished => String::new(),
        FacetScanEnd::StoppedAfter(key) => page_token(key),
    };
    Ok(pb::ListDevicesResponse { devices, next_page_token })
}

/// The token that resumes a listing after `key`: hex of the version byte
/// and the key.
fn page_token(key: FacetKey) -> String {
    let mut bytes = Vec::with_capacity(18);
    bytes.push(PAGE_TOKEN_VERSION);
    bytes.extend_from_slice(key.as_bytes());
    hex::encode(bytes)
}

/// Where a listing resumes: after the key in `token` (empty: the start).
/// A token this server could not have issued for a listing of `state` is
/// refused.
fn parse_page_token(token: &str, state: Option<LifecycleState>) -> Result<Option<FacetKey>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let key = hex::decode(token)
        .ok()
        .and_then(|bytes| match bytes.split_first() {
            Some((&PAGE_TOKEN_VERSION, key)) => FacetKey::from_bytes(key),
            _ => None,
        })
        .ok_or_else(|| {
            Status::invalid_argument(
                "page_token is not one this server issued; send the previous page's next_page_token, or none to start \
                 from the first page",
            )
        })?;
    if let Some(state) = state
        && key.state() != state
    {
        return Err(Status::invalid_argument(format!(
            "page_token belongs to a listing of {} devices, not {state}; send it with the filters of the listing it came from",
            key.state()
        )));
    }
    Ok(Some(key))
}

/// `device list` filters the facet index can decide (state, site, model).
struct DeviceFilter {
    state: Option<LifecycleState>,
    site: Option<String>,
    model: Option<String>,
}

impl DeviceFilter {
    /// Reads the facet filters of a list request.
    fn from_request(req: &pb::ListDevicesRequest) -> Result<Self, Status> {
        let text = |s: &str| Some(s.trim().to_lowercase()).filter(|s| !s.is_empty());
        let state = match req.state.trim() {
            "" => None,
            state => Some(state.parse::<LifecycleState>().map_err(|e| Status::invalid_argument(e.to_string()))?),
        };
        Ok(Self { state, site: text(&req.site), model: text(&req.model) })
    }

    /// Whether a device with these facets passes.
    fn matches(&self, device: &DeviceFacets<'_>) -> bool {
        self.state.is_none_or(|s| device.state == s)
            && self.site.as_ref().is_none_or(|site| device.site.is_some_and(|s| s.eq_ignore_ascii_case(site)))
            && self.model.as_ref().is_none_or(|model| {
                [device.model, device.registered_model]
                    .iter()
                    .any(|m| m.is_some_and(|m| m.to_lowercase().contains(model.as_str())))
            })
    }
}

#[cfg(test)]
mod tests;
