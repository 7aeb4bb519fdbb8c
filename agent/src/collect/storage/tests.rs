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
