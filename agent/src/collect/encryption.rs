//! What a volume holds, read from its first bytes: filesystem superblocks and
//! encryption headers (LUKS1, LUKS2, BitLocker), and what a device-mapper
//! target is, read from its `dm/uuid`.
//!
//! Everything here is a pure function of bytes or strings, so it is tested
//! on captured headers; `storage` does the reading.

use custodian_proto::v1 as pb;

/// How many bytes of a volume [`probe`] looks at: enough for every signature
/// it knows (the btrfs superblock sits at 64 KiB) and for a LUKS2 header with
/// the default 16 KiB metadata area.
pub const PROBE_LEN: usize = 68 * 1024;

/// Largest LUKS2 metadata area read when a header says it is bigger than
/// [`PROBE_LEN`] (cryptsetup allows up to 4 MiB).
pub const MAX_LUKS2_HEADER: u64 = 4 * 1024 * 1024;

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
const LUKS2_BINARY_HEADER_LEN: usize = 4096;

/// What the first bytes of a volume show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A LUKS header.
    Luks(LuksHeader),
    /// A LUKS magic whose header could not be parsed.
    BadLuks(ParseLuksHeaderError),
    /// A BitLocker volume (`-FVE-FS-` signature).
    BitLocker,
    /// A filesystem or other content type, in blkid's words (`ext4`, `swap`, `LVM2_member`).
    Filesystem(&'static str),
    /// Nothing recognised.
    Unrecognised,
}

impl Content {
    /// The content type in blkid's words, if recognised.
    pub fn type_name(&self) -> Option<&'static str> {
        match self {
            Content::Luks(_) | Content::BadLuks(_) => Some("crypto_LUKS"),
            Content::BitLocker => Some("BitLocker"),
            Content::Filesystem(name) => Some(name),
            Content::Unrecognised => None,
        }
    }
}

/// What a LUKS header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksHeader {
    /// 1 or 2.
    pub version: u16,
    /// Cipher and mode, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// Volume key size in bits.
    pub key_size_bits: u32,
    /// The header's UUID.
    pub uuid: String,
}

/// Why a LUKS header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseLuksHeaderError {
    /// Fewer bytes than the header needs.
    #[error("header truncated: {needed} bytes needed, {got} read")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The bytes do not start with the LUKS magic.
    #[error("no LUKS magic")]
    NoMagic,
    /// A version other than 1 or 2.
    #[error("unsupported LUKS version {0}")]
    UnsupportedVersion(u16),
    /// The LUKS2 JSON metadata does not parse or lacks a crypt segment.
    #[error("LUKS2 metadata: {0}")]
    Metadata(String),
}

/// Recognises what `bytes` (the start of a volume) hold.
pub fn probe(bytes: &[u8]) -> Content {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(0, LUKS_MAGIC) {
        return match parse_luks(bytes) {
            Ok(header) => Content::Luks(header),
            Err(e) => Content::BadLuks(e),
        };
    }
    if at(3, b"-FVE-FS-") {
        return Content::BitLocker;
    }
    // Swap puts its signature at the end of the first page; try the usual page sizes.
    if [4096usize, 16384, 65536].iter().any(|page| at(page - 10, b"SWAPSPACE2") || at(page - 10, b"SWAP-SPACE")) {
        return Content::Filesystem("swap");
    }
    if at(0, b"XFSB") {
        return Content::Filesystem("xfs");
    }
    if at(1080, &[0x53, 0xef]) {
        return Content::Filesystem(ext_version(bytes));
    }
    if at(65536 + 64, b"_BHRfS_M") {
        return Content::Filesystem("btrfs");
    }
    if at(3, b"NTFS    ") {
        return Content::Filesystem("ntfs");
    }
    if at(3, b"EXFAT   ") {
        return Content::Filesystem("exfat");
    }
    if at(510, &[0x55, 0xaa]) && (at(82, b"FAT32   ") || at(54, b"FAT16   ") || at(54, b"FAT12   ")) {
        return Content::Filesystem("vfat");
    }
    if at(512, b"LABELONE") && at(536, b"LVM2 001") {
        return Content::Filesystem("LVM2_member");
    }
    Content::Unrecognised
}

/// ext2, ext3 or ext4, from the superblock's feature flags (as blkid decides).
fn ext_version(bytes: &[u8]) -> &'static str {
    let le32 = |offset: usize| {
        bytes.get(offset..offset + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("slice is 4 bytes")))
    };
    const HAS_JOURNAL: u32 = 0x4;
    const EXT3_INCOMPAT: u32 = 0x2 | 0x4; // filetype, recover
    let compat = le32(1024 + 0x5c);
    let incompat = le32(1024 + 0x60);
    if incompat & !EXT3_INCOMPAT != 0 {
        "ext4"
    } else if compat & HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    }
}

/// A fixed-size, NUL-padded string field.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

fn need(bytes: &[u8], needed: usize) -> Result<(), ParseLuksHeaderError> {
    if bytes.len() < needed { Err(ParseLuksHeaderError::Truncated { needed, got: bytes.len() }) } else { Ok(()) }
}

/// For a LUKS2 header, how many bytes the whole metadata area takes (the
/// binary header plus the JSON area), so a caller can read that much.
pub fn luks2_header_len(bytes: &[u8]) -> Option<u64> {
    if bytes.get(..6)? != LUKS_MAGIC || bytes.get(6..8)? != [0, 2] {
        return None;
    }
    Some(u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?))
}

/// Parses a LUKS1 or LUKS2 header from the start of a volume.
pub fn parse_luks(bytes: &[u8]) -> Result<LuksHeader, ParseLuksHeaderError> {
    need(bytes, 8)?;
    if &bytes[..6] != LUKS_MAGIC {
        return Err(ParseLuksHeaderError::NoMagic);
    }
    match u16::from_be_bytes([bytes[6], bytes[7]]) {
        1 => parse_luks1(bytes),
        2 => parse_luks2(bytes),
        version => Err(ParseLuksHeaderError::UnsupportedVersion(version)),
    }
}

/// LUKS1 (on-disk format spec 1.2.3): cipher name at 8, mode at 40, key bytes
/// (big-endian u32) at 108, UUID at 168.
fn parse_luks1(bytes: &[u8]) -> Result<LuksHeader, ParseLuksHeaderError> {
    need(bytes, 208)?;
    let name = c_string(&bytes[8..40]);
    let mode = c_string(&bytes[40..72]);
    let key_bytes = u32::from_be_bytes(bytes[108..112].try_into().expect("slice is 4 bytes"));
    Ok(LuksHeader {
        version: 1,
        cipher: if mode.is_empty() { name } else { format!("{name}-{mode}") },
        key_size_bits: key_bytes.saturating_mul(8),
        uuid: c_string(&bytes[168..208]),
    })
}

/// LUKS2 (on-disk format spec 1.1): a 4 KiB binary header (header size at 8,
/// UUID at 168), then the JSON metadata, NUL-padded to the header size. The
/// cipher is segment 0's `encryption`; the key size is that of a keyslot the
/// segment's digest covers.
fn parse_luks2(bytes: &[u8]) -> Result<LuksHeader, ParseLuksHeaderError> {
    need(bytes, LUKS2_BINARY_HEADER_LEN)?;
    let hdr_size = u64::from_be_bytes(bytes[8..16].try_into().expect("slice is 8 bytes"));
    let hdr_size = usize::try_from(hdr_size).unwrap_or(usize::MAX);
    if hdr_size <= LUKS2_BINARY_HEADER_LEN {
        return Err(ParseLuksHeaderError::Metadata(format!("header size {hdr_size} leaves no JSON area")));
    }
    need(bytes, hdr_size)?;
    let area = &bytes[LUKS2_BINARY_HEADER_LEN..hdr_size];
    let end = area.iter().position(|&b| b == 0).unwrap_or(area.len());
    let json: serde_json::Value =
        serde_json::from_slice(&area[..end]).map_err(|e| ParseLuksHeaderError::Metadata(e.to_string()))?;
    let metadata = |why: &str| ParseLuksHeaderError::Metadata(why.to_owned());
    let segments = json.get("segments").and_then(|s| s.as_object()).ok_or_else(|| metadata("no segments"))?;
    let (segment_id, segment) = segments
        .iter()
        .filter(|(_, s)| s.get("type").and_then(|t| t.as_str()) == Some("crypt"))
        .min_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX))
        .ok_or_else(|| metadata("no crypt segment"))?;
    let cipher = segment
        .get("encryption")
        .and_then(|e| e.as_str())
        .ok_or_else(|| metadata("crypt segment has no encryption"))?
        .to_owned();
    let keyslots = json.get("keyslots").and_then(|k| k.as_object()).ok_or_else(|| metadata("no keyslots"))?;
    let covered: Vec<&str> = json
        .get("digests")
        .and_then(|d| d.as_object())
        .into_iter()
        .flat_map(|digests| digests.values())
        .filter(|d| {
            d.get("segments").and_then(|s| s.as_array()).is_some_and(|s| s.iter().any(|s| s == segment_id.as_str()))
        })
        .flat_map(|d| d.get("keyslots").and_then(|k| k.as_array()).into_iter().flatten())
        .filter_map(|k| k.as_str())
        .collect();
    let key_bytes = keyslots
        .iter()
        .filter(|(id, _)| covered.is_empty() || covered.contains(&id.as_str()))
        .find_map(|(_, slot)| slot.get("key_size").and_then(|k| k.as_u64()))
        .ok_or_else(|| metadata("no keyslot gives a key size"))?;
    Ok(LuksHeader {
        version: 2,
        cipher,
        key_size_bits: u32::try_from(key_bytes.saturating_mul(8)).unwrap_or(u32::MAX),
        uuid: c_string(&bytes[168..208]),
    })
}

/// What a device-mapper target's `dm/uuid` says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmTarget {
    /// dm-crypt opened from a LUKS1 header.
    Luks1,
    /// dm-crypt opened from a LUKS2 header.
    Luks2,
    /// dm-crypt opened from some other LUKS version.
    Luks,
    /// dm-crypt without a header.
    Plain,
    /// dm-crypt opened from a BitLocker volume (cryptsetup `bitlkOpen`).
    BitLocker,
    /// Another crypt type (`CRYPT-TCRYPT-`, …).
    OtherCrypt,
    /// An LVM logical volume.
    Lvm,
    /// Anything else (multipath, RAID, …).
    Other,
}

impl DmTarget {
    /// Classifies a `dm/uuid` value (`CRYPT-LUKS2-<uuid>-<name>`, `LVM-…`).
    pub fn from_uuid(uuid: &str) -> Self {
        let uuid = uuid.trim();
        if let Some(rest) = uuid.strip_prefix("CRYPT-") {
            match rest.split('-').next().unwrap_or_default() {
                "LUKS1" => DmTarget::Luks1,
                "LUKS2" => DmTarget::Luks2,
                t if t.starts_with("LUKS") => DmTarget::Luks,
                "PLAIN" => DmTarget::Plain,
                "BITLK" => DmTarget::BitLocker,
                _ => DmTarget::OtherCrypt,
            }
        } else if uuid.starts_with("LVM-") {
            DmTarget::Lvm
        } else {
            DmTarget::Other
        }
    }

    /// Whether this target encrypts what is written through it.
    pub fn is_crypt(self) -> bool {
        matches!(
            self,
            DmTarget::Luks1
                | DmTarget::Luks2
                | DmTarget::Luks
                | DmTarget::Plain
                | DmTarget::BitLocker
                | DmTarget::OtherCrypt
        )
    }

    /// The encryption scheme, for crypt targets.
    pub fn scheme(self) -> pb::EncryptionScheme {
        match self {
            DmTarget::Luks1 => pb::EncryptionScheme::Luks1,
            DmTarget::Luks2 => pb::EncryptionScheme::Luks2,
            DmTarget::Plain => pb::EncryptionScheme::DmCryptPlain,
            DmTarget::BitLocker => pb::EncryptionScheme::Bitlocker,
            DmTarget::Luks | DmTarget::OtherCrypt => pb::EncryptionScheme::Unknown,
            DmTarget::Lvm | DmTarget::Other => pb::EncryptionScheme::None,
        }
    }
}

/// An encrypted volume's [`pb::Encryption`] from its LUKS header.
pub fn from_luks(header: &LuksHeader, determined_by: String) -> pb::Encryption {
    pb::Encryption {
        state: pb::EncryptionState::Encrypted.into(),
        scheme: if header.version == 1 { pb::EncryptionScheme::Luks1 } else { pb::EncryptionScheme::Luks2 }.into(),
        cipher: header.cipher.clone(),
        key_size_bits: header.key_size_bits,
        determined_by,
    }
}

/// A [`pb::Encryption`] without cipher details.
pub fn encryption(state: pb::EncryptionState, scheme: pb::EncryptionScheme, determined_by: String) -> pb::Encryption {
    pb::Encryption {
        state: state.into(),
        scheme: scheme.into(),
        cipher: String::new(),
        key_size_bits: 0,
        determined_by,
    }
}

/// The machine's summary: compliant only when it has fixed data volumes and
/// every one is encrypted. (The server decides again from the volumes.)
pub fn summary(storage: &[pb::StorageDevice]) -> pb::EncryptionSummary {
    let mut n_data_volumes = 0;
    let mut unencrypted_volumes = Vec::new();
    for disk in storage {
        for volume in disk.volumes.iter().filter(|v| v.holds_data) {
            n_data_volumes += 1;
            let encrypted = volume.encryption.as_ref().is_some_and(|e| e.state() == pb::EncryptionState::Encrypted);
            if !encrypted {
                unencrypted_volumes.push(volume.name.clone());
            }
        }
    }
    pb::EncryptionSummary { compliant: n_data_volumes > 0 && unencrypted_volumes.is_empty(), unencrypted_volumes }
}

#[cfg(test)]
mod tests;
