//! Parsers for the kernel tables in procfs that more than one part of the
//! agent reads: the mount table and active swap (the collectors, to say
//! where a volume is mounted; the wipe preflight, to refuse a device in use).

/// A mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device.
    pub dev: (u32, u32),
    /// Mount point.
    pub mount_point: String,
    /// Mount source (e.g. `/dev/sda1`).
    pub source: String,
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                dev: (major.parse().ok()?, minor.parse().ok()?),
                mount_point: unescape_octal(fields.get(4)?),
                source: unescape_octal(fields.get(dash + 2)?),
            })
        })
        .collect()
}

/// An active swap area from `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    /// The device or file path.
    pub path: String,
    /// A partition (block device) rather than a swap file.
    pub partition: bool,
}

/// Parses `/proc/swaps` (its first line is a header).
pub fn parse_swaps(text: &str) -> Vec<Swap> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (path, kind) = (fields.next()?, fields.next()?);
            Some(Swap { path: unescape_octal(path), partition: kind == "partition" })
        })
        .collect()
}

/// Undoes the kernel's `\040`-style octal escaping of spaces, tabs, newlines
/// and backslashes in these tables.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
