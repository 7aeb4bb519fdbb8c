//! Tests for the address parsers.

use super::*;

#[test]
fn ipv4_addresses_land_on_the_interface_whose_route_covers_them() {
    let fib_trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n\
                    Local:\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 172.17.0.1\n        /32 host LOCAL\n\
                    |-- 127.0.0.1\n        /32 host LOCAL\n";
    let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                 docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
    assert_eq!(
        ipv4_addresses(fib_trie, route),
        [("eth0".to_owned(), "10.0.2.15/24".to_owned()), ("docker0".to_owned(), "172.17.0.1/16".to_owned())]
    );
}

#[test]
fn ipv6_addresses_are_formatted_with_their_prefix() {
    let parsed = parse_if_inet6("fe800000000000000a0027fffe4d5e6f 00000002 40 20 80 enp0s3\nbad line\n");
    assert_eq!(parsed["enp0s3"], ["fe80::a00:27ff:fe4d:5e6f/64"]);
}
