//! Integration tests of the agent against the real thing: a loop device
//! formatted by `cryptsetup luksFormat` is read by the same code the
//! collector runs on partitions. Needs root, `losetup` and `cryptsetup`
//! (Debian package `cryptsetup-bin`); fails loudly when they are missing.

#![allow(clippy::unwrap_used)] // A test binary: a panic is a failure report.

mod wipe;

use std::path::{Path, PathBuf};
use std::process::Command;

use custodian_agent::collect::storage::probe_volume;
use custodian_proto::v1 as pb;

/// A loop device attached for the test, detached when dropped (also when the test fails).
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(image: &Path) -> Self {
        let output = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image)
            .output()
            .expect("run losetup (package mount/util-linux); the loop-device test needs it");
        assert!(
            output.status.success(),
            "losetup --find --show failed (the test needs root and loop devices): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The guard exists from here on, so the device is detached whatever happens next.
        let device = Self { path: PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()) };
        assert!(device.path.to_string_lossy().starts_with("/dev/loop"), "losetup printed {:?}", device.path);
        device
    }

    fn name(&self) -> String {
        self.path.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let status = Command::new("losetup").arg("--detach").arg(&self.path).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("warning: could not detach {}: {status:?}", self.path.display());
        }
    }
}

fn cryptsetup(args: &[&str], device: &Path) {
    let mut child = Command::new("cryptsetup")
        .args(args)
        .arg(device)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run cryptsetup (Debian package cryptsetup-bin); the loop-device test needs it");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"loop-test-passphrase").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "cryptsetup {args:?} failed: {status}");
}

#[test]
fn a_luks2_loop_device_is_detected_with_its_cipher_and_key_size() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("luks2.img");
    std::fs::File::create(&image).unwrap().set_len(32 << 20).unwrap();
    let device = LoopDevice::attach(&image);
    cryptsetup(
        &[
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks2",
            "--cipher",
            "aes-xts-plain64",
            "--key-size",
            "512",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--key-file",
            "-",
        ],
        &device.path,
    );

    let volume = probe_volume(Path::new("/"), &device.name());
    let encryption = volume.encryption.unwrap();
    assert_eq!(encryption.state(), pb::EncryptionState::Encrypted, "{encryption:?}");
    assert_eq!(encryption.scheme(), pb::EncryptionScheme::Luks2);
    assert_eq!(encryption.cipher, "aes-xts-plain64");
    assert_eq!(encryption.key_size_bits, 512);
    assert_eq!(encryption.determined_by, format!("LUKS2 header read from {}", device.path.display()));
    assert_eq!(volume.filesystem.unwrap().as_value(), Some("crypto_LUKS"));
    assert_eq!(volume.size_bytes, 32 << 20);
}

#[test]
fn a_luks1_loop_device_is_detected_with_its_cipher_and_key_size() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("luks1.img");
    std::fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    let device = LoopDevice::attach(&image);
    cryptsetup(
        &[
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks1",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--iter-time",
            "1",
            "--key-file",
            "-",
        ],
        &device.path,
    );
    let encryption = probe_volume(Path::new("/"), &device.name()).encryption.unwrap();
    assert_eq!(
        (encryption.state(), encryption.scheme(), encryption.cipher.as_str(), encryption.key_size_bits),
        (pb::EncryptionState::Encrypted, pb::EncryptionScheme::Luks1, "aes-cbc-essiv:sha256", 256)
    );
}
