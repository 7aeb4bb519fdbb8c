//! Tests for the SMBIOS memory device parser.

use super::*;

fn memory_device(size: u16, extended_mib: u32, strings: &[&str]) -> Vec<u8> {
    let mut raw = vec![0u8; 0x28];
    raw[0] = 17;
    raw[1] = 0x28;
    raw[0x0c..0x0e].copy_from_slice(&size.to_le_bytes());
    raw[0x10] = 1;
    raw[0x12] = 0x22;
    raw[0x18] = 2;
    raw[0x1a] = 3;
    raw[0x1c..0x20].copy_from_slice(&extended_mib.to_le_bytes());
    for s in strings {
        raw.extend_from_slice(s.as_bytes());
        raw.push(0);
    }
    raw.push(0);
    raw
}

#[test]
fn memory_devices_are_read_with_sizes_in_every_encoding() {
    let module =
        parse_memory_device(&memory_device(0x7fff, 65536, &["DIMM 1", "ABCD1234", "M323R8GA4BB0-CQK"])).unwrap();
    assert_eq!((module.locator.as_str(), module.size_bytes), ("DIMM 1", 64 << 30));
    assert_eq!(module.kind.unwrap().as_value(), Some("DDR5"));
    assert_eq!(module.serial.unwrap().as_value(), Some("ABCD1234"));
    assert_eq!(module.part_number.unwrap().as_value(), Some("M323R8GA4BB0-CQK"));
    // Bit 15 set: the size is in KiB.
    let small = parse_memory_device(&memory_device(0x8000 | 512, 0, &["A", "B", "C"])).unwrap();
    assert_eq!(small.size_bytes, 512 << 10);
    // Placeholders are unknown, never reported as serials.
    let placeholder = parse_memory_device(&memory_device(8192, 0, &["A", "Not Specified", "C"])).unwrap();
    assert!(placeholder.serial.unwrap().as_value().is_none());
}

#[test]
fn empty_slots_and_other_structures_are_skipped() {
    assert_eq!(parse_memory_device(&memory_device(0, 0, &["DIMM 2"])), None);
    let mut other = memory_device(8192, 0, &["A"]);
    other[0] = 16;
    assert_eq!(parse_memory_device(&other), None);
    assert_eq!(parse_memory_device(&[17, 0x28, 0]), None);
}

#[test]
fn chassis_codes_have_names() {
    assert_eq!(chassis_name(10), Some("notebook"));
    assert_eq!(chassis_name(35), Some("mini-pc"));
    assert_eq!(chassis_name(200), None);
}
