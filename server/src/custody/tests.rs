//! Tests of reconciliation and the return file.

use super::*;

fn manifest(serials: &[&str]) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        id: 1,
        contractor: "Recyclers".to_owned(),
        collection_ref: "WEEE-1".to_owned(),
        created_by: "eve (engineer)".to_owned(),
        created_at_ms: 0,
        items: serials
            .iter()
            .map(|s| ManifestItem {
                kind: "disk".to_owned(),
                serial: (*s).to_owned(),
                device_id: String::new(),
                hostname: String::new(),
            })
            .collect(),
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_missing_serial_an_extra_one_and_a_duplicate_are_all_flagged() {
    let m = manifest(&["D1", "D2", "D3"]);
    let r = reconcile(&m, &owned(&["d1", " D2 ", "D2", "X9"]));
    assert_eq!(r.missing, ["D3"]);
    assert_eq!(r.unexpected, ["X9"]);
    assert_eq!(r.duplicates, ["D2"]);
    assert!(!r.is_clean());
    assert!(reconcile(&m, &owned(&["D3", "d2", "D1"])).is_clean());
}

#[test]
fn the_return_file_is_read_by_its_serial_column() {
    let serials = parse_return_csv("Item,Serial,Outcome\n1,D1,shredded\n2,\"D2\",wiped\n\n").unwrap();
    assert_eq!(serials, ["D1", "D2"]);
    assert!(parse_return_csv("item,outcome\n1,x\n").unwrap_err().contains("no `serial` column"));
    assert!(parse_return_csv("").is_err());
}

#[test]
fn a_return_file_from_a_spreadsheet_is_read_as_the_spreadsheet_shows_it() {
    // Excel's byte-order mark, a quoted field with a comma, CRLF line ends.
    let text = "\u{feff}Description,Serial\r\n\"OptiPlex 7010, SFF\",SN123\r\n\"Latitude \"\"5420\"\"\", SN456 \r\n";
    assert_eq!(parse_return_csv(text).unwrap(), ["SN123", "SN456"]);
    let err = parse_return_csv("Item,Outcome\n\"unclosed,x\n").unwrap_err();
    assert!(err.contains("no `serial` column"), "{err}");
}

#[test]
fn the_csv_quotes_what_needs_it() {
    let mut m = manifest(&["D1"]);
    m.contractor = "Recyclers, Ltd".to_owned();
    assert_eq!(
        manifest_csv(&m),
        "manifest_id,contractor,collection_ref,kind,serial,hostname,device_id\n1,\"Recyclers, Ltd\",WEEE-1,disk,D1,,\n"
    );
}
