//! CSV import parsing tests.

use super::*;

#[test]
fn the_device_list_csv_writes_reported_formulas_as_text() {
    let device = pb::DeviceSummary {
        device_id: "48a10939-fa29-45f4-85e0-aa99fc881269".to_owned(),
        hostname: "@SUM(1+1)*cmd".to_owned(),
        serial: "-SN1".to_owned(),
        site: "St Mary's, Ward 7".to_owned(),
        ..Default::default()
    };
    let csv = render_device_list_csv(&[device]);
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.starts_with("48a10939-fa29-45f4-85e0-aa99fc881269,'@SUM(1+1)*cmd,'-SN1,,,,\"St Mary's, Ward 7\","),
        "{row}"
    );
}

#[test]
fn reads_rows_with_quotes_and_any_column_order() {
    let text = "Asset-Tag,serial,MODEL,supplier,state\nNHS-1,S1,\"OptiPlex 7010, SFF\",Dell,in_stock\n\nNHS-2,S2,\"He said \"\"hi\"\"\",,\n";
    let devices = parse_device_csv(text).unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].asset_tag, "NHS-1");
    assert_eq!(devices[0].model, "OptiPlex 7010, SFF");
    assert_eq!(devices[0].state, "in_stock");
    assert_eq!(devices[0].line, 2);
    assert_eq!(devices[1].model, "He said \"hi\"");
    assert_eq!(devices[1].line, 4);
}

#[test]
fn every_bad_line_is_reported_with_its_number() {
    let text = "serial,asset_tag,model\nS1,T1,M\nS2,,M\nS3,T3\nS4,\"T4,M\n";
    let err = parse_device_csv(text).unwrap_err().to_string();
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(err.contains("line 3: asset_tag is empty"), "{err}");
    assert!(err.contains("line 4: 2 fields, but the header names 3"), "{err}");
    assert!(err.contains("line 5: a quoted field is not closed"), "{err}");
    assert!(!err.contains("line 2"), "{err}");
}

#[test]
fn header_problems_are_on_line_1() {
    let err = parse_device_csv("serial,tag,model\nS1,T1,M\n").unwrap_err().to_string();
    assert!(err.contains("line 1: unknown column \"tag\""), "{err}");
    assert!(err.contains("line 1: the header has no asset_tag column"), "{err}");
}
