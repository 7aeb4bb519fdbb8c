//! Wipe tests: real I/O on image files and loop devices (the tests run as
//! root), LUKS2 via cryptsetup, and the pure parsers on fixed inputs.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use custodian_proto::v1 as pb;

use super::engine::Cancel;
use super::methods::{self, Method, SanitizeRefusal, SanitizeSupport};
use super::pattern::Pattern;
use super::preflight::{self, Refusal};
use super::target::{self, HiddenArea};
use super::verify::{self, VerifyMode};
use super::*;

const RECORD: &[u8] = b"PATIENT RECORD: Jane Doe, NHS no. 943 476 5919, DOB 1961-03-02, diagnosis: confidential. ";

/// A loop device over a file, detached on drop even when the test fails.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> Self {
        let out = Command::new("losetup").args(["--find", "--show"]).arg(file).output().expect("run losetup");
        assert!(out.status.success(), "losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        Self { path: PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()) }
    }
}

impl Drop for LoopDevice {
    /// Detaches the device and waits until the kernel has let go of its
    /// backing file. `losetup -d` on a device something still holds open
    /// (udev probing it after a mount, say) only marks it to be cleared when
    /// the last holder closes it, and returns at once; a test that then wipes
    /// the image would be refused, rightly, because it is still attached.
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
        let name = self.path.file_name().expect("a loop device has a name");
        let backing = Path::new("/sys/block").join(name).join("loop/backing_file");
        retry_for_10s(|| !backing.exists());
    }
}

/// A mount, unmounted on drop.
struct Mounted {
    dir: PathBuf,
}

impl Drop for Mounted {
    /// Unmounts, trying again for a while if the mount is busy.
    fn drop(&mut self) {
        retry_for_10s(|| Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success()));
    }
}

/// Calls `done` until it says yes, for at most 10 seconds.
fn retry_for_10s(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An image of `size` bytes full of patient records (the last partial copy
/// too), not a multiple of the chunk size so tails are exercised.
fn patient_image(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        data.extend_from_slice(RECORD);
    }
    data.truncate(size);
    std::fs::write(&path, &data).unwrap();
    path
}

fn contains_record(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    // Any 16-byte window of the record text counts as a leftover; find
    // candidates by their first byte, then compare.
    let needles = [&RECORD[..16], &RECORD[40..56]];
    needles.iter().any(|needle| {
        bytes.iter().enumerate().filter(|(_, b)| **b == needle[0]).any(|(i, _)| bytes[i..].starts_with(needle))
    })
}

fn request(device: &Path, method: Method, verify: VerifyMode) -> WipeRequest {
    WipeRequest {
        device: device.to_owned(),
        method,
        verify,
        operator: "test".to_owned(),
        source_device_id: "00000000-0000-4000-8000-000000000001".to_owned(),
        signer_device_id: "00000000-0000-4000-8000-000000000001".to_owned(),
        root: PathBuf::from("/"),
        show_progress: false,
    }
}

fn wipe(req: &WipeRequest, hooks: &Hooks) -> pb::WipeAttestation {
    let prepared = prepare(req).expect("prepare");
    let mut marker = None;
    let att = execute(req, &prepared, hooks, &Cancel::new(), |started| {
        marker = Some(started.clone());
        Ok(())
    })
    .unwrap();
    let marker = marker.expect("the marker is written before the first write");
    assert_eq!(marker.result.unwrap().outcome, i32::from(pb::WipeOutcome::Interrupted));
    att
}

fn outcome(att: &pb::WipeAttestation) -> pb::WipeOutcome {
    pb::WipeOutcome::try_from(att.result.as_ref().unwrap().outcome).unwrap()
}

#[track_caller]
fn check_clear(device: &Path, raw: &Path, method: Method, verify: VerifyMode) {
    assert!(contains_record(raw), "fixture holds patient records");
    let att = wipe(&request(device, method, verify), &Hooks::default());
    assert_eq!(outcome(&att), pb::WipeOutcome::Passed, "{:?}", att.result);
    assert!(!contains_record(raw), "{} left patient record text on {}", method.name(), raw.display());
    let v = att.verification.unwrap();
    assert!(v.blocks_checked >= 2 && v.blocks_checked <= v.blocks_total);
    if verify == VerifyMode::Full {
        assert_eq!(v.blocks_checked, v.blocks_total);
    }
    assert_eq!(att.disk.unwrap().apparent_size_bytes, std::fs::read(raw).unwrap().len() as u64);
    assert!(att.finished_at_ms >= att.started_at_ms);
    assert_eq!(att.tool_sha256.len(), 64);
    match method {
        Method::ClearZero | Method::ClearMultipass { .. } => {
            assert!(std::fs::read(raw).unwrap().iter().all(|b| *b == 0), "ends in zeros");
        }
        _ => {
            // The random stream is regenerated from the attested seed.
            let seed: [u8; 32] = att.seed.as_slice().try_into().unwrap();
            let bytes = std::fs::read(raw).unwrap();
            let mut expected = vec![0u8; bytes.len()];
            Pattern::ChaCha20 { seed, stream: 0 }.fill(0, &mut expected);
            assert!(bytes == expected, "the device holds the seeded stream");
        }
    }
}

const CLEAR_METHODS: [Method; 3] = [Method::ClearZero, Method::ClearRandom, Method::ClearMultipass { passes: 2 }];

#[test]
fn clear_methods_leave_no_patient_record_in_an_image_file() {
    let dir = tempfile::tempdir().unwrap();
    for (i, method) in CLEAR_METHODS.into_iter().enumerate() {
        // 20 MiB plus an odd tail: not a multiple of the chunk or block size.
        let image = patient_image(dir.path(), &format!("disk{i}.img"), (20 << 20) + 777);
        check_clear(&image, &image, method, VerifyMode::Full);
    }
    let image = patient_image(dir.path(), "sampled.img", 24 << 20);
    check_clear(&image, &image, Method::ClearRandom, VerifyMode::Sample(10));
}

#[test]
fn clear_methods_leave_no_patient_record_on_a_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    for (i, method) in CLEAR_METHODS.into_iter().enumerate() {
        let image = patient_image(dir.path(), &format!("loop{i}.img"), 24 << 20);
        let lo = LoopDevice::attach(&image);
        check_clear(&lo.path, &lo.path, method, VerifyMode::Full);
        drop(lo);
        assert!(!contains_record(&image), "nothing left in the backing file either");
    }
}

#[test]
fn a_block_corrupted_after_the_write_fails_verification_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt_at = (9 << 20) + 4321;
    // Every byte is inverted, so the first corrupt byte differs from
    // whatever the pass wrote there (a fixed text would match a random
    // pass's byte one time in 256, moving the first mismatch along).
    let hooks = Hooks {
        after_write: Some(Box::new(move |path: &Path| {
            let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
            let mut bytes = [0u8; 7];
            file.read_exact_at(&mut bytes, corrupt_at)?;
            file.write_all_at(&bytes.map(|b| !b), corrupt_at)?;
            file.sync_all()
        })),
    };
    for method in [Method::ClearZero, Method::ClearRandom] {
        let image = patient_image(dir.path(), "corrupt.img", 16 << 20);
        let att = wipe(&request(&image, method, VerifyMode::Full), &hooks);
        assert_eq!(outcome(&att), pb::WipeOutcome::Failed);
        let result = att.result.unwrap();
        assert_eq!(result.first_mismatch_offset, Some(corrupt_at), "{}", result.reason);
        assert!(result.reason.contains(&corrupt_at.to_string()), "{}", result.reason);
    }
    // Sampled verification always reads the last block.
    let size = 16u64 << 20;
    let last = size - 10;
    let hooks = Hooks {
        after_write: Some(Box::new(move |path: &Path| {
            std::fs::OpenOptions::new().write(true).open(path)?.write_all_at(b"X", last)
        })),
    };
    let image = patient_image(dir.path(), "corrupt-last.img", size as usize);
    let lo = LoopDevice::attach(&image);
    let att = wipe(&request(&lo.path, Method::ClearZero, VerifyMode::Sample(1)), &hooks);
    assert_eq!(outcome(&att), pb::WipeOutcome::Failed);
    assert_eq!(att.result.unwrap().first_mismatch_offset, Some(last));
}

#[test]
fn a_luks2_volume_is_crypto_erased_and_is_luks_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let image = patient_image(dir.path(), "luks.img", 40 << 20);
    let lo = LoopDevice::attach(&image);
    let mut format = Command::new("cryptsetup")
        .args([
            "luksFormat",
            "--type",
            "luks2",
            "--batch-mode",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ])
        .args(["--key-file", "-"])
        .arg(&lo.path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run cryptsetup");
    format.stdin.take().unwrap().write_all(b"correct horse battery staple").unwrap();
    assert!(format.wait().unwrap().success(), "luksFormat");
    assert_eq!(methods::cryptsetup_is_luks(&lo.path), Some(true));
    let att = wipe(&request(&lo.path, Method::PurgeCryptoErase, VerifyMode::Full), &Hooks::default());
    assert_eq!(outcome(&att), pb::WipeOutcome::Passed, "{:?}", att.result);
    assert_eq!(methods::cryptsetup_is_luks(&lo.path), Some(false), "isLuks fails after the erase");
    assert_eq!(att.pattern, "luks2-metadata-zeroed");
    // Both binary headers, JSON areas and the keyslots area are zero.
    let v = att.verification.unwrap();
    let erased = v.blocks_total * verify::BLOCK;
    assert!(erased >= 16 << 20, "LUKS2 default metadata is 16 MiB, erased {erased}");
    let mut head = vec![0u8; 16 << 20];
    std::fs::File::open(&lo.path).unwrap().read_exact_at(&mut head, 0).unwrap();
    assert!(head.iter().all(|b| *b == 0));
    // A second crypto-erase is refused: nothing LUKS is left.
    let err = prepare(&request(&lo.path, Method::PurgeCryptoErase, VerifyMode::Full)).unwrap_err();
    assert!(matches!(err, PrepareWipeError::NotLuks { .. }), "{err}");
}

#[test]
fn a_mounted_device_is_refused_and_the_refusal_names_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let image = patient_image(dir.path(), "fs.img", 32 << 20);
    let lo = LoopDevice::attach(&image);
    let mkfs = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&lo.path).status().unwrap();
    assert!(mkfs.success());
    let mount_dir = dir.path().join("mnt");
    std::fs::create_dir(&mount_dir).unwrap();
    assert!(Command::new("mount").arg(&lo.path).arg(&mount_dir).status().unwrap().success());
    let mounted = Mounted { dir: mount_dir.clone() };
    let err = prepare(&request(&lo.path, Method::ClearZero, VerifyMode::Full)).unwrap_err();
    let PrepareWipeError::Preflight(preflight) = &err else { panic!("expected a preflight refusal, got {err}") };
    assert!(
        preflight
            .refusals
            .iter()
            .any(|r| matches!(r, Refusal::Mounted { mount_point, .. } if Path::new(mount_point) == mount_dir)),
        "{err}"
    );
    assert!(err.to_string().contains(&mount_dir.display().to_string()), "{err}");
    drop(mounted);
    // The backing file of an attached loop device is refused as well.
    let err = prepare(&request(&image, Method::ClearZero, VerifyMode::Full)).unwrap_err();
    assert!(err.to_string().contains(&lo.path.display().to_string()), "{err}");
    drop(lo);
    // Once unmounted and detached, it can be wiped.
    if let Err(e) = prepare(&request(&image, Method::ClearZero, VerifyMode::Full)) {
        panic!("the image, unmounted and detached, was refused: {e}");
    }
}

/// A sysfs/procfs fixture: `sda` (8:0) with partition `sda1` (8:1) held by
/// device-mapper volume `cryptroot`, `sdb` a member of md127, and `sdc` free.
fn fixture_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let block = root.join("sys/class/block");
    for (path, contents) in [
        ("sda/sda1/partition", "1"),
        ("sda/sda1/dev", "8:1"),
        ("sda1/holders/dm-0", ""),
        ("dm-0/dm/name", "cryptroot"),
        ("sdb/holders/md127", ""),
        ("sdc/device/model", "ACME SSD 512"),
        ("sdc/device/serial", "  S4EVNX0N123456  "),
        ("sdc/device/wwid", "naa.5002538e40a4b7c1"),
    ] {
        let file = block.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        if !contents.is_empty() {
            std::fs::write(&file, contents).unwrap();
        } else {
            std::fs::create_dir_all(&file).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), "22 1 254:0 / / rw - ext4 /dev/vda rw\n").unwrap();
    std::fs::write(root.join("proc/swaps"), "Filename Type Size Used Priority\n/dev/sdc2 partition 1 0 -2\n").unwrap();
    std::fs::write(root.join("proc/mdstat"), "md127 : active raid1 sdb[0] sdd[1]\n").unwrap();
    root
}

fn block_target(name: &str, major: u32, minor: u32) -> target::Target {
    target::Target {
        path: PathBuf::from(format!("/dev/{name}")),
        canonical: PathBuf::from(format!("/dev/{name}")),
        kind: target::TargetKind::Block { name: name.to_owned(), major, minor },
        size: 1 << 30,
        identity: target::DiskIdentity {
            model: None,
            serial: None,
            wwn: None,
            apparent_size: 1 << 30,
            native_size: 1 << 30,
            hidden_area: HiddenArea::NotChecked("fixture".to_owned()),
        },
    }
}

#[test]
fn devices_under_device_mapper_or_raid_are_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture_root(dir.path());
    let refusals = |name, minor| {
        let target = block_target(name, 8, minor);
        let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap();
        let swaps = std::fs::read_to_string(root.join("proc/swaps")).unwrap();
        preflight::find_refusals(
            &target,
            &root,
            &preflight::parse_mountinfo(&mountinfo),
            &preflight::parse_swaps(&swaps),
        )
    };
    assert_eq!(
        refusals("sda", 0),
        vec![Refusal::Holder { holder: "dm-0".to_owned(), what: "device-mapper volume \"cryptroot\"".to_owned() }]
    );
    assert_eq!(
        refusals("sdb", 16),
        vec![Refusal::Holder { holder: "md127".to_owned(), what: "md RAID array".to_owned() }]
    );
    assert_eq!(refusals("sdd", 48), vec![Refusal::RaidMember { array: "md127".to_owned() }], "found through mdstat");
    assert_eq!(refusals("sdc", 32), vec![]);
    // The mount of / on another device's number is not this disk's business;
    // on this disk's number it is the running system.
    let target = block_target("vda", 254, 0);
    let mounts = preflight::parse_mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n");
    assert_eq!(
        preflight::find_refusals(&target, &root, &mounts, &[]),
        vec![Refusal::RunningSystem { mount_point: "/".to_owned() }]
    );
    // Identity comes from sysfs under the root, trimmed.
    let id = target::identify_block(&root, "sdc", Path::new("/dev/sdc"), 1 << 30);
    assert_eq!(id.model.as_deref(), Some("ACME SSD 512"));
    assert_eq!(id.serial.as_deref(), Some("S4EVNX0N123456"));
    assert_eq!(id.wwn.as_deref(), Some("naa.5002538e40a4b7c1"));
}

#[test]
fn purge_sanitize_without_a_drive_command_refuses_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let image = patient_image(dir.path(), "sanitize.img", 4 << 20);
    let err = prepare(&request(&image, Method::PurgeSanitize, VerifyMode::Full)).unwrap_err();
    assert!(matches!(err, PrepareWipeError::Sanitize(SanitizeRefusal::NoCommand(_))), "{err}");
    assert!(err.to_string().contains("neither an NVMe nor an ATA disk"), "{err}");
    let lo = LoopDevice::attach(&image);
    let err = prepare(&request(&lo.path, Method::PurgeSanitize, VerifyMode::Full)).unwrap_err();
    assert!(err.to_string().contains(&lo.path.display().to_string()), "{err}");
    assert!(contains_record(&image), "a refusal writes nothing");
}

#[test]
fn a_cancelled_wipe_is_attested_as_interrupted_never_passed() {
    let dir = tempfile::tempdir().unwrap();
    let image = patient_image(dir.path(), "cancel.img", 8 << 20);
    let req = request(&image, Method::ClearRandom, VerifyMode::Full);
    let prepared = prepare(&req).unwrap();
    let cancel = Cancel::new();
    cancel.set();
    let att = execute(&req, &prepared, &Hooks::default(), &cancel, |_| Ok(())).unwrap();
    assert_eq!(outcome(&att), pb::WipeOutcome::Interrupted);
    // A failing marker write stops the wipe before anything is written.
    let res = execute(&req, &prepared, &Hooks::default(), &Cancel::new(), |_| anyhow::bail!("disk full"));
    assert!(res.is_err());
    assert!(contains_record(&image));
}

#[test]
fn a_leftover_marker_becomes_a_signed_interrupted_attestation_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::state::StateDir::new(dir.path().join("state"));
    std::fs::create_dir_all(state.root()).unwrap();
    let key = crate::keys::DeviceKey::load_or_generate(&state).unwrap();
    let device_id: custodian_proto::identity::DeviceId = "00000000-0000-4000-8000-000000000002".parse().unwrap();
    state
        .save_enrollment(&crate::state::Enrollment {
            server: "https://127.0.0.1:1".to_owned(),
            device_id,
            cert_issued_at_ms: 0,
            cert_not_after_ms: i64::MAX,
        })
        .unwrap();
    let image = patient_image(dir.path(), "crash.img", 4 << 20);
    let req = request(&image, Method::ClearZero, VerifyMode::Full);
    let prepared = prepare(&req).unwrap();
    let marker = attestation::marker_path(&state);
    // The "crash": the marker is written, then the process dies mid-wipe.
    let started = execute(&req, &prepared, &Hooks::default(), &Cancel::new(), |started| {
        attestation::write_marker(&marker, started)?;
        anyhow::bail!("simulated crash after the marker")
    });
    assert!(started.is_err());
    assert!(marker.exists());
    let agent = crate::Agent::open(state.clone()).unwrap();
    let seq = agent.recover_interrupted_wipe().unwrap().expect("the marker is turned into an attestation");
    assert!(!marker.exists());
    assert_eq!(agent.recover_interrupted_wipe().unwrap(), None);
    let (spooled_seq, envelope) = agent.spool.pending(10).unwrap().pop().unwrap();
    assert_eq!(spooled_seq, seq);
    let payload = custodian_proto::envelope::verify(
        &key.signing.verifying_key(),
        &envelope,
        custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE,
    )
    .unwrap();
    let att = <pb::WipeAttestation as prost::Message>::decode(payload).unwrap();
    assert_eq!(att.seq, seq);
    assert_eq!(outcome(&att), pb::WipeOutcome::Interrupted);
    assert_eq!(att.result.unwrap().reason, attestation::CRASH_REASON);
    assert_eq!(att.device_path, image.display().to_string());
    // A report envelope never verifies as an attestation.
    assert!(
        custodian_proto::envelope::verify(
            &key.signing.verifying_key(),
            &envelope,
            custodian_proto::envelope::REPORT_PAYLOAD_TYPE
        )
        .is_err()
    );
}

#[test]
fn the_random_stream_is_regenerated_at_any_offset() {
    let pattern = Pattern::ChaCha20 { seed: [7; 32], stream: 3 };
    let mut whole = vec![0u8; 3 * 4096];
    pattern.fill(0, &mut whole);
    let mut middle = vec![0u8; 4096];
    pattern.fill(4096, &mut middle);
    assert_eq!(&whole[4096..8192], &middle[..]);
    let mut other_stream = vec![0u8; 4096];
    Pattern::ChaCha20 { seed: [7; 32], stream: 4 }.fill(4096, &mut other_stream);
    assert_ne!(middle, other_stream);
}

#[test]
fn sampled_blocks_always_include_the_first_and_last() {
    for total in [1u64, 2, 3, 10, 1000] {
        let blocks = verify::choose_blocks(total, VerifyMode::Sample(5));
        assert_eq!(blocks[0], 0);
        assert_eq!(*blocks.last().unwrap(), total - 1);
        assert!(blocks.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(verify::choose_blocks(1000, VerifyMode::Sample(10)).len(), 100);
    assert_eq!(verify::choose_blocks(7, VerifyMode::Full), (0..7).collect::<Vec<_>>());
    let spans = verify::spans(&[0, 1, 2, 5, 9], 9 * verify::BLOCK + 5);
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].len as u64, 3 * verify::BLOCK);
    assert_eq!(spans[2].len, 5);
}

#[test]
fn verify_modes_and_methods_parse() {
    assert_eq!("full".parse::<VerifyMode>(), Ok(VerifyMode::Full));
    assert_eq!("sample:5".parse::<VerifyMode>(), Ok(VerifyMode::Sample(5)));
    assert!("sample:0".parse::<VerifyMode>().is_err());
    assert!("sample:101".parse::<VerifyMode>().is_err());
    assert_eq!(Method::parse("clear-multipass", Some(4)), Ok(Method::ClearMultipass { passes: 4 }));
    assert!(Method::parse("clear-zero", Some(2)).is_err());
    assert!(Method::parse("clear-multipass", Some(1)).is_err());
    assert!(Method::parse("dod-5220", None).is_err());
}

#[test]
fn hdparm_and_nvme_capabilities_parse() {
    assert_eq!(
        target::parse_hdparm_n("\n/dev/sda:\n max sectors   = 1953525168/1953525168, HPA is disabled\n"),
        Some(HiddenArea::Disabled { sectors: 1953525168 })
    );
    assert_eq!(
        target::parse_hdparm_n(" max sectors   = 976773168/1953525168, HPA is enabled\n"),
        Some(HiddenArea::Enabled { visible: 976773168, native: 1953525168 })
    );
    assert_eq!(target::parse_hdparm_n("SG_IO: bad/missing sense data"), None);
    let identify = "Security: \n\tMaster password revision code = 65534\n\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\t\tfrozen\n\tnot\texpired: security count\n\t\tsupported: enhanced erase\n\t2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.\nLogical Unit WWN Device Identifier: 5002538e40a4b7c1\n";
    assert_eq!(methods::parse_hdparm_identify(identify), Some((SanitizeSupport::Ata { enhanced: true }, true)));
    let unfrozen = identify.replace("\t\tfrozen", "\tnot\tfrozen");
    assert_eq!(methods::parse_hdparm_identify(&unfrozen), Some((SanitizeSupport::Ata { enhanced: true }, false)));
    assert_eq!(methods::parse_hdparm_identify("Security: \n\tnot\tsupported\n"), None);
    assert_eq!(
        methods::parse_nvme_sanicap(r#"{"vid":5197,"sanicap":3,"fna":4}"#),
        Some(SanitizeSupport::Nvme { crypto: true, block: true, overwrite: false })
    );
    assert_eq!(
        methods::parse_nvme_sanicap(r#"{"sanicap":0}"#),
        Some(SanitizeSupport::Nvme { crypto: false, block: false, overwrite: false })
    );
    assert_eq!(methods::parse_nvme_sanicap("not json"), None);
}

#[test]
fn mountinfo_swaps_and_mdstat_parse() {
    let mountinfo = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                     90 22 7:3 / /tmp/my\\040disk rw,relatime shared:50 - ext4 /dev/loop3 rw\n";
    let mounts = preflight::parse_mountinfo(mountinfo);
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[1].dev, (7, 3));
    assert_eq!(mounts[1].mount_point, "/tmp/my disk");
    assert_eq!(mounts[1].source, "/dev/loop3");
    let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t8388604\t\t0\t\t-2\n";
    assert_eq!(preflight::parse_swaps(swaps), vec!["/dev/sda2".to_owned()]);
    let mdstat =
        "Personalities : [raid1]\nmd127 : active raid1 sdb1[1] sda1[0]\n      976630464 blocks super 1.2 [2/2] [UU]\n";
    assert_eq!(preflight::md_arrays_with(mdstat, &["sda", "sda1"]), vec!["md127".to_owned()]);
    assert!(preflight::md_arrays_with(mdstat, &["sdc"]).is_empty());
}

#[test]
fn luks1_header_layout_parses_and_other_bytes_are_not_luks() {
    let mut head = vec![0u8; 4096];
    head[..6].copy_from_slice(b"LUKS\xba\xbe");
    head[6..8].copy_from_slice(&1u16.to_be_bytes());
    head[104..108].copy_from_slice(&4096u32.to_be_bytes()); // payload at 2 MiB
    head[108..112].copy_from_slice(&32u32.to_be_bytes());
    for slot in 0..8 {
        let base = 208 + slot * 48;
        head[base + 40..base + 44].copy_from_slice(&(8 + slot as u32 * 512).to_be_bytes());
        head[base + 44..base + 48].copy_from_slice(&4000u32.to_be_bytes());
    }
    let layout = methods::parse_luks(&head).unwrap();
    assert_eq!(layout.version, 1);
    assert_eq!(layout.metadata_end, 2 << 20);
    assert!(matches!(methods::parse_luks(&[0u8; 4096]), Err(methods::ParseLuksError::NotLuks)));
    assert!(matches!(methods::parse_luks(RECORD.repeat(50).as_slice()), Err(methods::ParseLuksError::NotLuks)));
}
