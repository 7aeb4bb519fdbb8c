//! Tests for the `manage-bde -status` parser, on captured output.

use super::*;

fn captured() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/platform/manage-bde-status.txt");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_volume_is_parsed() {
    let volumes = parse_manage_bde_status(&captured());
    let summary: Vec<(&str, &str, &str, &str)> = volumes
        .iter()
        .map(|v| (v.mount.as_str(), v.kind.as_str(), v.conversion_status.as_str(), v.encryption_method.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("C:", "OS Volume", "Fully Encrypted", "XTS-AES 128"),
            ("D:", "Data Volume", "Fully Decrypted", "None"),
            ("E:", "Data Volume", "Fully Encrypted", "XTS-AES 256"),
            ("F:", "Removable Volume", "Encryption in Progress", "AES 128"),
        ]
    );
    assert_eq!(volumes[0].label, "OS");
    assert_eq!(volumes[0].protection_status, "Protection On");
}

#[test]
fn only_protected_fully_encrypted_volumes_count_as_encrypted() {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let volumes: Vec<pb::Volume> = parse_manage_bde_status(&captured()).iter().map(to_volume).collect();
    #[track_caller]
    fn check(volume: &pb::Volume, state: State, scheme: Scheme, cipher: &str, bits: u32, holds_data: bool) {
        let e = volume.encryption.as_ref().unwrap();
        assert_eq!(
            (e.state(), e.scheme(), e.cipher.as_str(), e.key_size_bits, volume.holds_data),
            (state, scheme, cipher, bits, holds_data)
        );
    }
    check(&volumes[0], State::Encrypted, Scheme::Bitlocker, "aes-xts", 128, true);
    check(&volumes[1], State::NotEncrypted, Scheme::None, "", 0, true);
    // Suspended protection leaves the key in the clear.
    check(&volumes[2], State::NotEncrypted, Scheme::Bitlocker, "", 0, true);
    check(&volumes[3], State::NotEncrypted, Scheme::Bitlocker, "", 0, false);
    assert_eq!(volumes[0].size_bytes, 475_870_000_000);
    assert!(volumes[2].encryption.as_ref().unwrap().determined_by.contains("Protection Off"));
}

#[test]
fn wmi_encryptable_volumes_map_like_manage_bde() {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/platform/win32-encryptable-volume.txt");
    let parsed = parse_encryptable_volumes(&std::fs::read_to_string(path).unwrap());
    assert_eq!(parsed.len(), 3);
    assert_eq!(
        parsed[0],
        EncryptableVolume {
            drive_letter: "C:".to_owned(),
            protection_status: Some(1),
            conversion_status: Some(1),
            encryption_method: Some(6),
            volume_type: Some(0),
        }
    );
    let volumes: Vec<pb::Volume> = parsed.iter().map(encryptable_to_bitlocker).map(|v| to_volume(&v)).collect();
    let facts: Vec<(&str, State, Scheme, &str, u32, bool)> = volumes
        .iter()
        .map(|v| {
            let e = v.encryption.as_ref().unwrap();
            (v.name.as_str(), e.state(), e.scheme(), e.cipher.as_str(), e.key_size_bits, v.holds_data)
        })
        .collect();
    assert_eq!(
        facts,
        [
            ("C:", State::Encrypted, Scheme::Bitlocker, "aes-xts", 128, true),
            ("D:", State::NotEncrypted, Scheme::None, "", 0, true),
            ("E:", State::NotEncrypted, Scheme::Bitlocker, "", 0, false),
        ]
    );
}
