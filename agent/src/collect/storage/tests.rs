//! Tests for the mount table and swap parsers.

use super::*;

#[test]
fn mountinfo_maps_device_numbers_to_unescaped_mount_points() {
    let mounts = parse_mountinfo(
        "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n\
         40 22 8:17 / /media/a\\040b\\011c rw - vfat /dev/sdb1 rw\n\
         41 22 8:17 / /mnt/again rw - vfat /dev/sdb1 rw\n",
    );
    assert_eq!(mounts["253:1"], ["/"]);
    assert_eq!(mounts["8:17"], ["/media/a b\tc", "/mnt/again"]);
}

#[test]
fn swaps_lists_partitions_not_files() {
    let swaps = parse_swaps(
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile  file  1048572 0 -2\n/dev/dm-2  partition  16777212 0 -3\n",
    );
    assert_eq!(swaps, ["/dev/dm-2"]);
}

#[test]
fn an_unreadable_device_node_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys/block/sdz");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::write(sys.join("size"), "2048000\n").unwrap();
    std::fs::write(sys.join("dev"), "8:240\n").unwrap();
    let volume = probe_volume(dir.path(), "sdz");
    let e = volume.encryption.unwrap();
    assert_eq!(e.state(), pb::EncryptionState::Unknown);
    assert!(e.determined_by.starts_with("absent reading /dev/sdz"), "{}", e.determined_by);
    assert_eq!(volume.filesystem.unwrap(), pb::Readable::unknown("absent reading /dev/sdz"));
}

/// A tree with `sda2` an LVM physical volume whose logical volumes are given
/// as (kernel name, dm uuid, holders).
fn lvm_tree(lvs: &[(&str, &str, &[&str])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |relative: &str, contents: &[u8]| {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    };
    write("sys/block/sda/sda2/partition", b"2\n");
    write("sys/block/sda/sda2/size", b"2048000\n");
    write("sys/block/sda/sda2/dev", b"8:2\n");
    let mut label = vec![0u8; 4096];
    label[512..520].copy_from_slice(b"LABELONE");
    label[536..544].copy_from_slice(b"LVM2 001");
    write("dev/sda2", &label);
    for (name, uuid, holders) in lvs {
        write(&format!("sys/block/sda/sda2/holders/{name}"), b"");
        write(&format!("sys/block/{name}/dm/uuid"), format!("{uuid}\n").as_bytes());
        write(&format!("sys/block/{name}/dm/name"), format!("{name}-name\n").as_bytes());
        for holder in *holders {
            write(&format!("sys/block/{name}/holders/{holder}"), b"");
            write(&format!("sys/block/{holder}/dm/uuid"), format!("CRYPT-LUKS2-abc-{holder}\n").as_bytes());
        }
    }
    dir
}

#[test]
fn luks_on_lvm_counts_only_when_every_logical_volume_is_encrypted() {
    let all = lvm_tree(&[("dm-0", "LVM-aaa", &["dm-2"]), ("dm-1", "LVM-bbb", &["dm-3"])]);
    let e = probe_volume(all.path(), "sda2").encryption.unwrap();
    assert_eq!((e.state(), e.scheme()), (pb::EncryptionState::Encrypted, pb::EncryptionScheme::Luks2), "{e:?}");

    let mixed = lvm_tree(&[("dm-0", "LVM-aaa", &["dm-2"]), ("dm-1", "LVM-bbb", &[])]);
    let volume = probe_volume(mixed.path(), "sda2");
    let e = volume.encryption.unwrap();
    assert_eq!(e.state(), pb::EncryptionState::NotEncrypted);
    assert_eq!(e.determined_by, "LVM2_member read from /dev/sda2; not every device-mapper path above it is dm-crypt");
    assert_eq!(volume.filesystem.unwrap().as_value(), Some("LVM2_member"));
}
