//! Network interfaces from the kernel: names, MACs and link state from
//! `sys/class/net`, IPv6 addresses from `proc/net/if_inet6`, IPv4 addresses
//! from the local entries of `proc/net/fib_trie` matched to interfaces by
//! `proc/net/route`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use custodian_proto::v1 as pb;

use super::read_trimmed;

/// `IFF_UP` in `sys/class/net/*/flags`.
const IFF_UP: u32 = 0x1;

/// Every interface except loopback, by name.
pub(crate) fn interfaces(root: &Path) -> Vec<pb::NetworkInterface> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/net")) else {
        return Vec::new();
    };
    let read = |relative: &str| std::fs::read_to_string(root.join(relative)).unwrap_or_default();
    let mut addresses = parse_if_inet6(&read("proc/net/if_inet6"));
    for (name, address) in ipv4_addresses(&read("proc/net/fib_trie"), &read("proc/net/route")) {
        addresses.entry(name).or_default().insert(0, address);
    }
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
        .into_iter()
        .filter(|name| name != "lo")
        .map(|name| {
            let dir = root.join("sys/class/net").join(&name);
            let mac = read_trimmed(&dir.join("address")).filter(|m| m != "00:00:00:00:00:00").unwrap_or_default();
            let flags = read_trimmed(&dir.join("flags"))
                .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            let operstate = read_trimmed(&dir.join("operstate")).unwrap_or_default();
            let up = flags & IFF_UP != 0 && (operstate == "up" || operstate == "unknown");
            pb::NetworkInterface {
                addresses: addresses.remove(&name).unwrap_or_default(),
                name,
                mac: mac.to_lowercase(),
                up,
            }
        })
        .collect()
}

/// Interface name → IPv6 addresses with prefix length.
pub(crate) fn parse_if_inet6(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hex, _index, prefix, _scope, _flags, name] = fields[..] else { continue };
        let (Ok(bits), Ok(prefix)) = (u128::from_str_radix(hex, 16), u8::from_str_radix(prefix, 16)) else { continue };
        out.entry(name.to_owned()).or_default().push(format!("{}/{prefix}", Ipv6Addr::from(bits)));
    }
    out
}

/// (interface, `address/prefix`) for each local IPv4 address: `/32 host
/// LOCAL` leaves of the fib trie, placed on the interface whose route covers
/// them most specifically.
pub(crate) fn ipv4_addresses(fib_trie: &str, route: &str) -> Vec<(String, String)> {
    // (interface, destination, mask), host byte order.
    let routes: Vec<(String, u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // /proc/net/route prints the network-order bytes as a native
            // (little-endian) word: `0002000A` is 10.0.2.0.
            let parse = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| u32::from_be_bytes(v.to_le_bytes()));
            Some((f[0].to_owned(), parse(f.get(1)?)?, parse(f.get(7)?)?))
        })
        .filter(|(_, _, mask)| *mask != 0)
        .collect();
    let mut local = Vec::new();
    let mut last_ip: Option<Ipv4Addr> = None;
    for line in fib_trie.lines().map(str::trim) {
        if let Some(ip) = line.strip_prefix("|-- ") {
            last_ip = ip.parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(ip) = last_ip
            && !local.contains(&ip)
        {
            local.push(ip);
        }
    }
    local
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .filter_map(|ip| {
            let bits = u32::from(ip);
            let (name, _, mask) =
                routes.iter().filter(|(_, dest, mask)| bits & mask == *dest).max_by_key(|(_, _, m)| m.count_ones())?;
            Some((name.clone(), format!("{ip}/{}", mask.count_ones())))
        })
        .collect()
}

#[cfg(test)]
mod tests;
