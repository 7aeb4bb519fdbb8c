//! Tests for spreadsheet-safe CSV cells.

use super::*;

#[test]
fn formulas_are_written_as_text_and_other_cells_as_they_are() {
    assert_eq!(csv_field("=HYPERLINK(\"http://x\",\"click\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\"");
    assert_eq!(csv_field("+1"), "'+1");
    assert_eq!(csv_field("-2+3"), "'-2+3");
    assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(csv_field("\tcmd"), "'\tcmd");
    assert_eq!(csv_field("ward7-pc01"), "ward7-pc01");
    assert_eq!(csv_field("Recyclers, Ltd"), "\"Recyclers, Ltd\"");
    assert_eq!(csv_field(""), "");
    assert_eq!(csv_field("2026-12-06T21:49:02.528Z"), "2026-12-06T21:49:02.528Z");
}
