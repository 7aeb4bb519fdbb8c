//! Tests for paged device lists: every match once across pages, however the
//! pages end, and page tokens and sizes checked.

use std::collections::BTreeSet;

use tonic::Code;

use super::*;
use crate::grpc::test_support::{self, NOW};
use crate::store::{DeviceRecord, NewDevice};

/// Registers `n` machines: even ones `ordered`, odd ones `in_stock`; sites
/// `site-0` to `site-2`; every fourth a Latitude, the rest OptiPlexes.
fn register(store: &Store, n: u32) -> Vec<DeviceRecord> {
    let rows: Vec<NewDevice> = (0..n)
        .map(|i| NewDevice {
            line: None,
            serial: format!("SN{i:05}"),
            asset_tag: format!("NHS-{i:05}"),
            model: if i % 4 == 0 { "Latitude 5440".to_owned() } else { "OptiPlex 7010".to_owned() },
            supplier: None,
            order_ref: None,
            site: Some(format!("site-{}", i % 3)),
            state: if i % 2 == 0 { LifecycleState::Ordered } else { LifecycleState::InStock },
        })
        .collect();
    store.add_devices(&rows, "eve (engineer)", NOW, "test").unwrap().unwrap()
}

/// Enrols a machine (`staged`) and commits one inventory with one data
/// volume, encrypted or not.
fn enrolled_reporting(store: &Store, i: u8, encrypted: bool) -> DeviceRecord {
    let device_id = test_support::enroll(store, &format!("PC-{i:03}"));
    store.commit_report(&test_support::inventory_report(device_id, 1, NOW, encrypted)).unwrap().unwrap();
    store.device(device_id).unwrap().unwrap()
}

/// Every page of a listing: the devices' ids in the order the pages gave
/// them, and the number of devices on each page.
fn all_pages(store: &Store, req: &pb::ListDevicesRequest, limits: PageLimits) -> (Vec<String>, Vec<usize>) {
    let mut req = req.clone();
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let page = page_with_limits(store, &req, NOW, limits).unwrap();
        ids.extend(page.devices.iter().map(|d| d.device_id.clone()));
        sizes.push(page.devices.len());
        if page.next_page_token.is_empty() {
            return (ids, sizes);
        }
        assert!(sizes.len() <= 10_000, "the listing does not end");
        req.page_token = page.next_page_token;
    }
}

#[track_caller]
fn check_every_match_once(
    store: &Store,
    req: &pb::ListDevicesRequest,
    limits: PageLimits,
    expected: &BTreeSet<String>,
) {
    let (ids, sizes) = all_pages(store, req, limits);
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "a device was listed twice: {req:?}");
    assert_eq!(&unique, expected, "{req:?}");
    let page_size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n,
    } as usize;
    assert!(sizes.iter().all(|&n| n <= page_size), "{sizes:?}");
}

fn ids_of<'a>(devices: impl IntoIterator<Item = &'a DeviceRecord>) -> BTreeSet<String> {
    devices.into_iter().map(|d| d.device_id.to_string()).collect()
}

#[test]
fn a_paged_listing_returns_every_match_exactly_once() {
    let (_dir, store) = test_support::temp_store();
    let registered = register(&store, 250);
    let compliant = enrolled_reporting(&store, 1, true);
    let noncompliant = enrolled_reporting(&store, 2, false);
    let enrolled = [&compliant, &noncompliant];
    let everything = ids_of(registered.iter().chain(enrolled));
    let where_ = |f: &dyn Fn(&DeviceRecord) -> bool| ids_of(registered.iter().chain(enrolled).filter(|d| f(d)));
    let is_latitude = |d: &DeviceRecord| d.registered_model.as_deref() == Some("Latitude 5440");
    let filters = [
        (pb::ListDevicesRequest::default(), everything.clone()),
        (
            pb::ListDevicesRequest { state: "in_stock".to_owned(), ..Default::default() },
            where_(&|d| d.state == LifecycleState::InStock),
        ),
        (
            pb::ListDevicesRequest { site: "SITE-1".to_owned(), model: "latitude".to_owned(), ..Default::default() },
            where_(&|d| d.site.as_deref() == Some("site-1") && is_latitude(d)),
        ),
        // Filters decided after the index (an unknown verdict is not compliant).
        (
            pb::ListDevicesRequest { noncompliant: true, ..Default::default() },
            where_(&|d| d.device_id != compliant.device_id),
        ),
        (pb::ListDevicesRequest { noncompliant: true, state: "staged".to_owned(), ..Default::default() }, {
            ids_of([&noncompliant])
        }),
    ];
    for (filter, expected) in &filters {
        assert!(!expected.is_empty(), "{filter:?}");
        for page_size in [1, 7, 100, 0] {
            let req = pb::ListDevicesRequest { page_size, ..filter.clone() };
            check_every_match_once(&store, &req, LIMITS, expected);
        }
        // Pages cut short by how many entries they examine or records they
        // read (some pages empty), or by their size in bytes (one device each).
        let req = pb::ListDevicesRequest { page_size: 50, ..filter.clone() };
        for limits in [
            PageLimits { max_entries: 3, ..LIMITS },
            PageLimits { max_records: 2, ..LIMITS },
            PageLimits { max_bytes: 1, ..LIMITS },
        ] {
            check_every_match_once(&store, &req, limits, expected);
        }
    }

    // Full pages while more follow; the last page ends the listing.
    let (_, sizes) = all_pages(&store, &pb::ListDevicesRequest { page_size: 100, ..Default::default() }, LIMITS);
    assert_eq!(sizes, [100, 100, 52]);
    // An entry limit of 3 over the site-1 Latitudes (one in twelve): pages
    // with nothing on them still carry a token.
    let req = pb::ListDevicesRequest { site: "site-1".to_owned(), model: "latitude".to_owned(), ..Default::default() };
    let (_, sizes) = all_pages(&store, &req, PageLimits { max_entries: 3, ..LIMITS });
    assert!(sizes.len() >= 252 / 3 && sizes.contains(&0), "{sizes:?}");
    // A record limit of 2 with --noncompliant --state staged: the compliant
    // machine's record is read and left out, so one page is empty.
    let req = pb::ListDevicesRequest { noncompliant: true, state: "staged".to_owned(), ..Default::default() };
    let (ids, sizes) = all_pages(&store, &req, PageLimits { max_records: 1, ..LIMITS });
    assert_eq!(ids, [noncompliant.device_id.to_string()]);
    assert_eq!((sizes.len(), sizes.iter().sum::<usize>()), (2, 1), "{sizes:?}");
}

#[test]
fn compliance_and_last_inventory_come_with_each_summary() {
    let (_dir, store) = test_support::temp_store();
    register(&store, 3);
    let unencrypted = enrolled_reporting(&store, 1, false);
    let page = list_devices_page(&store, &pb::ListDevicesRequest::default(), NOW).unwrap();
    let verdicts: Vec<(&str, Vec<String>, i64)> = page
        .devices
        .iter()
        .map(|d| {
            let verdict = d.encryption_compliance.as_ref().unwrap();
            (verdict.state.as_str(), verdict.unencrypted_volumes.clone(), d.last_inventory_ms)
        })
        .collect();
    let unencrypted_at =
        page.devices.iter().position(|d| d.device_id == unencrypted.device_id.to_string()).expect("listed");
    for (i, verdict) in verdicts.iter().enumerate() {
        if i == unencrypted_at {
            assert_eq!(*verdict, ("noncompliant", vec!["sda2 (sda)".to_owned()], NOW));
        } else {
            assert_eq!(*verdict, ("unknown", vec![], 0));
        }
    }
}

#[test]
fn bad_page_tokens_and_sizes_are_refused() {
    let (_dir, store) = test_support::temp_store();
    register(&store, 10);
    let in_stock = pb::ListDevicesRequest { state: "in_stock".to_owned(), page_size: 2, ..Default::default() };
    let token = list_devices_page(&store, &in_stock, NOW).unwrap().next_page_token;
    assert_eq!(token.len(), 36, "{token}");
    // The token works where it came from.
    let next =
        list_devices_page(&store, &pb::ListDevicesRequest { page_token: token.clone(), ..in_stock.clone() }, NOW);
    assert_eq!(next.unwrap().devices.len(), 2);

    #[track_caller]
    fn check_refused(store: &Store, req: pb::ListDevicesRequest, message: &str) {
        let status = list_devices_page(store, &req, NOW).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    let with_token =
        |page_token: &str| pb::ListDevicesRequest { page_token: page_token.to_owned(), ..Default::default() };
    let not_issued = "page_token is not one this server issued";
    check_refused(&store, with_token("not a token"), not_issued);
    check_refused(&store, with_token(&token[..34]), not_issued);
    check_refused(&store, with_token(&format!("{token}00")), not_issued);
    check_refused(&store, with_token(&format!("02{}", &token[2..])), not_issued);
    check_refused(&store, with_token(&format!("01ff{}", &token[4..])), not_issued);
    // A token from an in_stock listing, sent with another state.
    let ordered = pb::ListDevicesRequest { state: "ordered".to_owned(), page_token: token, ..Default::default() };
    check_refused(&store, ordered, "belongs to a listing of in_stock devices, not ordered");
    check_refused(
        &store,
        pb::ListDevicesRequest { page_size: MAX_PAGE_SIZE + 1, ..Default::default() },
        "at most 5000",
    );
    let largest = pb::ListDevicesRequest { page_size: MAX_PAGE_SIZE, ..Default::default() };
    assert_eq!(list_devices_page(&store, &largest, NOW).unwrap().devices.len(), 10);
}
