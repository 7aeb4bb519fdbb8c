//! Tests for header and signature parsing, on captured headers.

use super::*;

fn fixture_node(machine: &str, node: &str) -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(machine).join("dev").join(node);
    std::fs::read(path).unwrap()
}

#[test]
fn luks2_header_gives_cipher_and_key_size_from_the_json_area() {
    let header = parse_luks(&fixture_node("laptop-luks2-nvme", "nvme0n1p3")).unwrap();
    assert_eq!((header.version, header.cipher.as_str(), header.key_size_bits), (2, "aes-xts-plain64", 512));
    assert_eq!(header.uuid.len(), 36);
}

#[test]
fn luks1_header_gives_cipher_and_key_size() {
    let header = parse_luks(&fixture_node("encrypted-plus-usb", "sda2")).unwrap();
    assert_eq!((header.version, header.cipher.as_str(), header.key_size_bits), (1, "aes-xts-plain64", 512));
}

#[test]
fn a_truncated_luks2_header_is_an_error_not_a_guess() {
    let bytes = fixture_node("laptop-luks2-nvme", "nvme0n1p3");
    assert_eq!(parse_luks(&bytes[..8192]), Err(ParseLuksHeaderError::Truncated { needed: 16384, got: 8192 }));
    assert!(matches!(probe(&bytes[..8192]), Content::BadLuks(_)));
    let mut wrong_version = bytes.clone();
    wrong_version[7] = 3;
    assert_eq!(parse_luks(&wrong_version), Err(ParseLuksHeaderError::UnsupportedVersion(3)));
}

#[test]
fn superblocks_are_recognised() {
    #[track_caller]
    fn check(machine: &str, node: &str, expect: Option<&str>) {
        assert_eq!(probe(&fixture_node(machine, node)).type_name(), expect);
    }
    check("laptop-luks2-nvme", "nvme0n1p1", Some("vfat"));
    check("laptop-luks2-nvme", "nvme0n1p2", Some("ext4"));
    check("laptop-luks2-nvme", "nvme0n1p3", Some("crypto_LUKS"));
    check("desktop-sata-plain", "sda5", Some("swap"));
    check("desktop-sata-plain", "sda2", None);
    let mut bitlocker = vec![0u8; 512];
    bitlocker[3..11].copy_from_slice(b"-FVE-FS-");
    assert_eq!(probe(&bitlocker), Content::BitLocker);
}

#[test]
fn dm_uuids_are_classified() {
    #[track_caller]
    fn check(uuid: &str, expect: DmTarget, crypt: bool) {
        assert_eq!(DmTarget::from_uuid(uuid), expect);
        assert_eq!(expect.is_crypt(), crypt);
    }
    check("CRYPT-LUKS2-9f1b7c2e4a3d4e5f8a6b1c2d3e4f5a6b-root", DmTarget::Luks2, true);
    check("CRYPT-LUKS1-1b2c-sda2_crypt", DmTarget::Luks1, true);
    check("CRYPT-PLAIN-cryptswap", DmTarget::Plain, true);
    check("CRYPT-BITLK-abc-win", DmTarget::BitLocker, true);
    check("CRYPT-TCRYPT-x", DmTarget::OtherCrypt, true);
    check("LVM-Xb3kV9n2", DmTarget::Lvm, false);
    check("mpath-3600", DmTarget::Other, false);
}

#[test]
fn a_machine_without_data_volumes_is_not_compliant() {
    assert!(!summary(&[]).compliant);
}
