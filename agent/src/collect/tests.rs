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

    let inventory = HostCollector::new(root).collect();
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
    let inventory = HostCollector::new(dir.path()).collect();
    let system = inventory.system.unwrap();
    assert_eq!(system.serial.unwrap(), pb::Readable::unknown("absent"));
    assert_eq!(inventory.memory.unwrap().total_bytes, 0);
    assert_eq!(inventory.cpu.unwrap().model.unwrap(), pb::Readable::unknown("absent"));
}
