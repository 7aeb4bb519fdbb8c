//! Tests for the `fdesetup status` and `diskutil apfs list` parsers, on captured output.

use super::*;

fn captured(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/platform").join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn fdesetup_status_is_parsed() {
    assert_eq!(parse_fdesetup_status(&captured("fdesetup-status-on.txt")), FileVaultStatus::On);
    assert_eq!(parse_fdesetup_status(&captured("fdesetup-status-off.txt")), FileVaultStatus::Off);
    assert_eq!(
        parse_fdesetup_status(&captured("fdesetup-status-encrypting.txt")),
        FileVaultStatus::Encrypting("37.2".to_owned())
    );
    assert_eq!(parse_fdesetup_status("Error: no\n"), FileVaultStatus::Unrecognised("Error: no".to_owned()));
}

#[test]
fn apfs_volumes_are_parsed_with_role_and_filevault() {
    let volumes = parse_diskutil_apfs_list(&captured("diskutil-apfs-list.txt"));
    let summary: Vec<(&str, &str, &str, &str, &str)> = volumes
        .iter()
        .map(|v| (v.disk.as_str(), v.role.as_str(), v.name.as_str(), v.mount_point.as_str(), v.filevault.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("disk3s1", "System", "Macintosh HD", "", "Yes (Unlocked)"),
            ("disk3s2", "Preboot", "Preboot", "/System/Volumes/Preboot", "No"),
            ("disk3s5", "Data", "Macintosh HD - Data", "/System/Volumes/Data", "Yes (Unlocked)"),
            ("disk3s7", "", "Imaging", "/Volumes/Imaging", "No"),
        ]
    );
    assert!(volumes.iter().all(|v| v.physical_store == "disk0s2"));
    assert_eq!(volumes[2].consumed_bytes, 226_048_155_648);
}

#[test]
fn data_volumes_count_and_filevault_decides() {
    let volumes: Vec<pb::Volume> =
        parse_diskutil_apfs_list(&captured("diskutil-apfs-list.txt")).iter().map(to_volume).collect();
    let facts: Vec<(&str, bool, pb::EncryptionState)> =
        volumes.iter().map(|v| (v.name.as_str(), v.holds_data, v.encryption.as_ref().unwrap().state())).collect();
    assert_eq!(
        facts,
        [
            ("disk3s1", false, pb::EncryptionState::Encrypted),
            ("disk3s2", false, pb::EncryptionState::NotEncrypted),
            ("disk3s5", true, pb::EncryptionState::Encrypted),
            ("disk3s7", true, pb::EncryptionState::NotEncrypted),
        ]
    );
    assert_eq!(volumes[2].encryption.as_ref().unwrap().scheme(), pb::EncryptionScheme::Filevault);
}
