//! Which resolved addresses a plugin may not reach without an explicit grant:
//! loopback, private, link-local (cloud metadata lives there), and every
//! other range that is not the public internet (after Spin's
//! `blocked_networks.rs`). IPv6 forms that embed an IPv4 address are judged
//! by the address they embed: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
//! (`::ffff:0:a.b.c.d`, RFC 2765), NAT64 (`64:ff9b::a.b.c.d`, RFC 6052) and
//! 6to4 (`2002:AABB:CCDD::/48`); IPv4-compatible addresses (`::a.b.c.d`,
//! deprecated) are refused whatever they embed, and name its range when
//! that is not public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is not a public address, or `None` when it is one.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => v4_reason(ip),
        IpAddr::V6(ip) => v6_reason(ip),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified address (0.0.0.0/8 reaches this host)",
        (10, _, _) | (192, 168, _) => "a private address",
        (172, b, _) if (16..32).contains(&b) => "a private address",
        (127, _, _) => "a loopback address",
        (169, 254, _) => "a link-local address (cloud metadata lives at 169.254.169.254)",
        (100, b, _) if (64..128).contains(&b) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18 | 19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d
        return v4_reason(v4);
    }
    match segments {
        // ::a.b.c.d (IPv4-compatible, deprecated) and the rest of ::/96.
        [0, 0, 0, 0, 0, 0, hi, lo] => {
            Some(v4_reason(embedded_v4(hi, lo)).unwrap_or("an IPv4-compatible address (deprecated)"))
        }
        // ::ffff:0:a.b.c.d, IPv4-translated (SIIT, RFC 2765): judged by its IPv4 address.
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => v4_reason(embedded_v4(hi, lo)),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix: judged by its IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4_reason(embedded_v4(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some("a local-use NAT64 address"),
        // 2002:AABB:CCDD::/48 is 6to4 for a.b.c.d.
        [0x2002, hi, lo, ..] => v4_reason(embedded_v4(hi, lo)),
        [0x2001, 0, ..] => Some("a Teredo tunnel address"),
        [0x2001, 0xdb8, ..] => Some("a documentation address"),
        [0x100, 0, 0, 0, ..] => Some("a discard-only address"),
        [s, ..] if s & 0xfe00 == 0xfc00 => Some("a unique local (private) address (AWS metadata is fd00:ec2::254)"),
        [s, ..] if s & 0xffc0 == 0xfe80 => Some("a link-local address"),
        [s, ..] if s & 0xffc0 == 0xfec0 => Some("a site-local address (deprecated)"),
        [s, ..] if s & 0xff00 == 0xff00 => Some("a multicast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        // (address, blocked)
        let cases: &[(&str, bool)] = &[
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("10.0.0.1", true),
            ("10.255.255.255", true),
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("169.254.169.254", true),
            ("169.254.0.1", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.15.0.1", false),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("192.169.1.1", false),
            ("100.64.0.1", true),
            ("100.127.255.255", true),
            ("100.128.0.1", false),
            ("192.0.0.1", true),
            ("192.0.2.1", true),
            ("198.18.0.1", true),
            ("198.20.0.1", false),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("1.1.1.1", false),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("::", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:10.1.2.3", true),
            ("::ffff:8.8.8.8", false),
            ("::127.0.0.1", true),
            ("::8.8.8.8", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::808:808", false),
            // IPv4-translated (::ffff:0:0:0/96): judged by the IPv4 address inside.
            ("::ffff:0:127.0.0.1", true),
            ("::ffff:0:7f00:1", true),
            ("::ffff:0:169.254.169.254", true),
            ("::ffff:0:10.0.0.1", true),
            ("::ffff:0:172.16.0.1", true),
            ("::ffff:0:192.168.1.1", true),
            ("::ffff:0:100.64.0.1", true),
            ("::ffff:0:0.0.0.0", true),
            ("::ffff:0:224.0.0.1", true),
            ("::ffff:0:8.8.8.8", false),
            ("::ffff:0:93.184.216.34", false),
            // NAT64 (64:ff9b::/96), by the IPv4 address inside.
            ("64:ff9b::127.0.0.1", true),
            ("64:ff9b::169.254.169.254", true),
            ("64:ff9b::10.1.2.3", true),
            ("64:ff9b::192.168.0.1", true),
            ("64:ff9b::0.0.0.0", true),
            ("64:ff9b::1.1.1.1", false),
            // IPv4-compatible (::a.b.c.d, deprecated): refused whatever it embeds.
            ("::10.0.0.1", true),
            ("::169.254.169.254", true),
            ("::1.1.1.1", true),
            ("64:ff9b:1::1", true),
            ("2002:7f00:1::1", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:808:808::1", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("2001:db8::1", true),
            ("100::1", true),
            ("fc00::1", true),
            ("fd00:ec2::254", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("2606:4700:4700::1111", false),
            ("2a00:1450:4001:82a::200e", false),
        ];
        for (text, blocked) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(non_public_reason(ip).is_some(), *blocked, "{text}: {:?}", non_public_reason(ip));
        }
    }

    #[test]
    fn reasons_name_the_range() {
        assert_eq!(non_public_reason("127.0.0.1".parse().unwrap()), Some("a loopback address"));
        assert!(non_public_reason("169.254.169.254".parse().unwrap()).unwrap().contains("metadata"));
        assert!(non_public_reason("fd00:ec2::254".parse().unwrap()).unwrap().contains("private"));
        assert_eq!(non_public_reason("::ffff:127.0.0.1".parse().unwrap()), Some("a loopback address"));
        // Every form that embeds an IPv4 address names the range of that address.
        let metadata = non_public_reason("169.254.169.254".parse().unwrap());
        for form in
            ["::ffff:169.254.169.254", "::ffff:0:169.254.169.254", "64:ff9b::169.254.169.254", "::169.254.169.254"]
        {
            assert_eq!(non_public_reason(form.parse().unwrap()), metadata, "{form}");
        }
        assert_eq!(non_public_reason("2002:a9fe:a9fe::1".parse().unwrap()), metadata);
        assert_eq!(non_public_reason("::8.8.8.8".parse().unwrap()), Some("an IPv4-compatible address (deprecated)"));
    }
}
