//! Tests for the host collector, on fixture trees.

use super::*;

fn write(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn a_fixture_tree_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "proc/sys/kernel/hostname", "ward7-pc03\n");
    write(root, "proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    write(root, "etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n");
    write(
        root,
        "proc/cpuinfo",
        "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-10500\nphysical id\t: 0\ncore id\t\t: 0\n\n\
         processor\t: 1\nmodel name\t: Intel(R) Core(TM) i5-10500\nphysical id\t: 0\ncore id\t\t: 0\n\n\
         processor\t: 2\nmodel name\t: Intel(R) Core(TM) i5-10500\nphysical id\t: 0\ncore id\t\t: 1\n",
    );
    write(root, "proc/meminfo", "MemTotal:       16318412 kB\nMemFree: 1 kB\n");
    write(root, "sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
    write(root, "sys/class/dmi/id/product_name", "OptiPlex 7080\n");
    write(root, "sys/class/dmi/id/product_serial", "To Be Filled By O.E.M.\n");

    let inventory = HostCollector::new(root).with_executable(root.join("no-such-agent")).collect();
    assert_eq!(inventory.hostname, "ward7-pc03");
    let os = inventory.os.unwrap();
    assert_eq!(os.name.unwrap().as_value(), Some("Debian GNU/Linux"));
    assert_eq!(os.version.unwrap().as_value(), Some("12"));
    assert_eq!(os.kernel.unwrap().as_value(), Some("6.1.0-18-amd64"));
    let cpu = inventory.cpu.unwrap();
    assert_eq!(cpu.model.unwrap().as_value(), Some("Intel(R) Core(TM) i5-10500"));
    assert_eq!((cpu.cores, cpu.threads), (2, 3));
    assert_eq!(inventory.memory.unwrap().total_bytes, 16318412 * 1024);
    let system = inventory.system.unwrap();
    assert_eq!(system.vendor.unwrap().as_value(), Some("Dell Inc."));
    assert_eq!(system.model.unwrap().as_value(), Some("OptiPlex 7080"));
    // A firmware placeholder is not a serial number.
    let serial = system.serial.unwrap();
    assert_eq!(serial.as_value(), None);
    assert!(matches!(serial.state, Some(pb::readable::State::Unknown(ref why)) if why.contains("placeholder")));
}

#[test]
fn missing_files_are_unknown_with_a_reason_never_invented() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = HostCollector::new(dir.path()).with_executable(dir.path().join("no-such-agent")).collect();
    let system = inventory.system.unwrap();
    assert_eq!(system.serial.unwrap(), pb::Readable::unknown("absent"));
    assert_eq!(inventory.memory.unwrap().total_bytes, 0);
    assert_eq!(inventory.cpu.unwrap().model.unwrap(), pb::Readable::unknown("absent"));
}

/// The collected inventory of a fixture machine under `agent/tests/fixtures/NAME`.
fn fixture(name: &str) -> pb::Inventory {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    HostCollector::new(fixtures.join(name)).with_executable(fixtures.join("agent-executable")).collect()
}

fn volume<'a>(inventory: &'a pb::Inventory, name: &str) -> &'a pb::Volume {
    inventory.storage.iter().flat_map(|d| &d.volumes).find(|v| v.name == name).unwrap()
}

#[track_caller]
fn check_encryption(
    volume: &pb::Volume,
    state: pb::EncryptionState,
    scheme: pb::EncryptionScheme,
    cipher: &str,
    bits: u32,
) {
    let e = volume.encryption.as_ref().unwrap();
    assert_eq!((e.state(), e.scheme(), e.cipher.as_str(), e.key_size_bits), (state, scheme, cipher, bits), "{e:?}");
}

#[test]
fn laptop_with_luks2_root_on_nvme() {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let inventory = fixture("laptop-luks2-nvme");
    let disk = &inventory.storage[0];
    assert_eq!(
        (disk.name.as_str(), disk.transport.as_str(), disk.removable, disk.rotational),
        ("nvme0n1", "nvme", false, false)
    );
    assert_eq!(disk.serial.as_ref().unwrap().as_value(), Some("S4ENNF0N123456"));
    assert_eq!(disk.wwn.as_ref().unwrap().as_value(), Some("eui.0025388b91b2c3d4"));
    let root = volume(&inventory, "nvme0n1p3");
    check_encryption(root, State::Encrypted, Scheme::Luks2, "aes-xts-plain64", 512);
    assert_eq!(root.mount_points, ["/", "[SWAP]"]);
    assert!(root.holds_data);
    // The EFI system partition and /boot hold no data, so they do not count.
    assert!(!volume(&inventory, "nvme0n1p1").holds_data);
    assert!(!volume(&inventory, "nvme0n1p2").holds_data);
    assert!(inventory.encryption.as_ref().unwrap().compliant);
    let firmware = inventory.firmware.as_ref().unwrap();
    assert_eq!(firmware.tpm_version.as_ref().unwrap().as_value(), Some("2.0"));
    assert_eq!(firmware.secure_boot.as_ref().unwrap().as_value(), Some("enabled"));
    assert_eq!(inventory.memory.as_ref().unwrap().modules.len(), 2);
    expect_test::expect_file!["../../tests/fixtures/laptop-luks2-nvme.expected.json"].assert_eq(&to_json(&inventory));
}

#[test]
fn unencrypted_sata_desktop() {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let inventory = fixture("desktop-sata-plain");
    let disk = &inventory.storage[0];
    assert_eq!((disk.transport.as_str(), disk.rotational, disk.removable), ("sata", true, false));
    assert_eq!(disk.serial.as_ref().unwrap().as_value(), Some("ZN1ABC23"));
    check_encryption(volume(&inventory, "sda1"), State::NotEncrypted, Scheme::None, "", 0);
    check_encryption(volume(&inventory, "sda5"), State::NotEncrypted, Scheme::None, "", 0);
    assert_eq!(volume(&inventory, "sda5").mount_points, ["[SWAP]"]);
    // The extended-partition container is two sectors and holds nothing.
    assert!(!volume(&inventory, "sda2").holds_data);
    let summary = inventory.encryption.as_ref().unwrap();
    assert_eq!(
        (summary.compliant, summary.unencrypted_volumes.as_slice()),
        (false, &["sda1".to_owned(), "sda5".to_owned()][..])
    );
    let firmware = inventory.firmware.as_ref().unwrap();
    assert_eq!(firmware.tpm_version.as_ref().unwrap().as_value(), Some("1.2"));
    assert!(
        firmware.secure_boot.as_ref().unwrap().as_value().is_none(),
        "legacy BIOS: Secure Boot is unknown, not off"
    );
    expect_test::expect_file!["../../tests/fixtures/desktop-sata-plain.expected.json"].assert_eq(&to_json(&inventory));
}

#[test]
fn encrypted_disk_with_usb_stick_and_swap() {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let inventory = fixture("encrypted-plus-usb");
    check_encryption(volume(&inventory, "sda2"), State::Encrypted, Scheme::Luks1, "aes-xts-plain64", 512);
    // Swap on plain dm-crypt has no header; the dm uuid tells.
    let swap = volume(&inventory, "sda3");
    check_encryption(swap, State::Encrypted, Scheme::DmCryptPlain, "", 0);
    assert_eq!(swap.mount_points, ["[SWAP]"]);
    let stick = inventory.storage.iter().find(|d| d.name == "sdb").unwrap();
    assert_eq!((stick.transport.as_str(), stick.removable), ("usb", true));
    let stick_volume = volume(&inventory, "sdb1");
    check_encryption(stick_volume, State::NotEncrypted, Scheme::None, "", 0);
    assert_eq!(stick_volume.mount_points, ["/media/theatre/ULTRA FIT"]);
    assert!(!stick_volume.holds_data, "removable media do not count towards compliance");
    assert!(inventory.encryption.as_ref().unwrap().compliant);
    // The SATA serial comes from VPD page 0x80 when udev has none.
    assert_eq!(inventory.storage[0].serial.as_ref().unwrap().as_value(), Some("S3Z9NB0K123456A"));
    expect_test::expect_file!["../../tests/fixtures/encrypted-plus-usb.expected.json"].assert_eq(&to_json(&inventory));
}

#[test]
fn the_inventory_hash_is_stable_and_sensitive() {
    let inventory = fixture("laptop-luks2-nvme");
    assert_eq!(inventory_sha256(&inventory), inventory_sha256(&fixture("laptop-luks2-nvme")));
    let mut changed = inventory.clone();
    changed.storage[0].volumes[2].encryption.as_mut().unwrap().state = pb::EncryptionState::NotEncrypted.into();
    assert_ne!(inventory_sha256(&inventory), inventory_sha256(&changed));
}

#[test]
fn a_refusal_says_whether_root_would_help() {
    use std::io::Error;
    // File permissions: root passes them.
    assert_eq!(io_reason(&Error::from_raw_os_error(libc::EACCES)), "permission denied (run the agent as root)");
    // Refused even to root (a container's device cgroup gives this for /dev/vda).
    let eperm = io_reason(&Error::from_raw_os_error(libc::EPERM));
    assert!(eperm.starts_with("operation not permitted (refused even to root"), "{eperm}");
    assert!(!eperm.contains("run the agent as root"), "{eperm}");
    assert_eq!(io_reason(&Error::from_raw_os_error(libc::ENOENT)), "absent");
}
