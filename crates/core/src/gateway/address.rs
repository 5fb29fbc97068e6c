//! Which addresses a gateway may be reached at. Gateways are set up by project admins, and the
//! server makes the requests: without a rule, an admin could point one at the server's own
//! services (`127.0.0.1:8080/metrics`), a cloud metadata service (`169.254.169.254`) or the
//! private network behind it. So loopback, link-local, private, shared (CGNAT), unique-local
//! and other non-public addresses are refused, IPv4 and IPv6 alike (an IPv4 address written
//! as IPv6, `::ffff:127.0.0.1`, counts as the IPv4 address), unless the operator allows them
//! (`--allow-gateway-host HOST_OR_CIDR`: a Kannel smsbox on the same machine is the common
//! case). Resolving names and refusing at connection time is `casecast-gateways`' part; this
//! is the rule alone.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;

/// The flag that allows an address, as error messages name it.
pub const ALLOW_FLAG: &str = "--allow-gateway-host";

/// Why an address is not public; the words follow "is a" / "is an".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Unspecified,
    Loopback,
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    /// 169.254.0.0/16 and fe80::/10; cloud metadata services live here.
    LinkLocal,
    /// fc00::/7 (and the deprecated site-local fec0::/10).
    UniqueLocal,
    Multicast,
    /// Broadcast, documentation, benchmarking, protocol-assignment and reserved ranges.
    Reserved,
}

impl AddressKind {
    fn words(self) -> &'static str {
        match self {
            AddressKind::Unspecified => "an unspecified address",
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private address",
            AddressKind::Shared => "a shared (carrier-grade NAT) address",
            AddressKind::LinkLocal => "a link-local address (where cloud metadata services live)",
            AddressKind::UniqueLocal => "a unique-local address",
            AddressKind::Multicast => "a multicast address",
            AddressKind::Reserved => "a reserved address",
        }
    }
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    Some(if a == 0 {
        // 0.0.0.0/8: "this network"; 0.0.0.0 itself reaches the local machine.
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_private() {
        AddressKind::Private
    } else if a == 100 && (64..128).contains(&b) {
        AddressKind::Shared
    } else if ip.is_link_local() {
        AddressKind::LinkLocal
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if ip.is_broadcast()
        || ip.is_documentation()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
    {
        AddressKind::Reserved
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    // An IPv4 address carried in IPv6 is judged as that IPv4 address: mapped (::ffff:a.b.c.d),
    // compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48).
    let s = ip.segments();
    let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if (s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1))
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return non_public_v4(v4);
    }
    Some(if ip.is_unspecified() {
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_unicast_link_local() {
        AddressKind::LinkLocal
    } else if ip.is_unique_local() || (s[0] & 0xffc0) == 0xfec0 {
        AddressKind::UniqueLocal
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if (s[0] == 0x2001 && s[1] == 0xdb8) || (s[..4] == [0x100, 0, 0, 0]) {
        // Documentation, and the discard-only prefix 100::/64.
        AddressKind::Reserved
    } else {
        return None;
    })
}

/// One `--allow-gateway-host` value: an address or a network (every address in it may be
/// reached), or a host name (a gateway URL naming that host may reach whatever it resolves to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowEntry {
    Network(IpNet),
    Host(String),
}

/// A value of `--allow-gateway-host` that is none of an address, a network or a host name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an IP address, a network in CIDR form (10.0.0.0/8) or a host name")]
pub struct BadAllowEntry {
    pub value: String,
}

impl FromStr for AllowEntry {
    type Err = BadAllowEntry;

    fn from_str(text: &str) -> Result<AllowEntry, BadAllowEntry> {
        let bad = || BadAllowEntry {
            value: text.to_string(),
        };
        let t = text.trim();
        let bare = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(AllowEntry::Network(IpNet::from(ip)));
        }
        if t.contains('/') {
            // Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8.
            return t
                .parse::<IpNet>()
                .map(|n| AllowEntry::Network(n.trunc()))
                .map_err(|_| bad());
        }
        let host = normal_host(t);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        // A name of digits and dots alone would be an address written wrong (10.0.0.300).
        let all_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if host.is_empty() || host.len() > 253 || all_numeric || !host.split('.').all(label_ok) {
            return Err(bad());
        }
        Ok(AllowEntry::Host(host))
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Network(n) if n.prefix_len() == n.max_prefix_len() => {
                write!(f, "{}", n.addr())
            }
            AllowEntry::Network(n) => write!(f, "{n}"),
            AllowEntry::Host(h) => f.write_str(h),
        }
    }
}

/// A host as compared: lower case, without brackets or a final dot.
fn normal_host(host: &str) -> String {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(h);
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// An address a gateway may not be reached at, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} {via}is {kind}: gateways may not reach loopback, link-local or private addresses \
     unless the server is started with {ALLOW_FLAG} {allow}",
    kind = kind.words(),
    via = via(host, ip),
    allow = allow_hint(host, ip)
)]
pub struct Refused {
    /// The host as the gateway's URL names it.
    pub host: String,
    /// The address refused (the host itself for an address).
    pub ip: IpAddr,
    pub kind: AddressKind,
}

fn via(host: &str, ip: &IpAddr) -> String {
    if normal_host(host).parse::<IpAddr>().ok() == Some(*ip) {
        String::new()
    } else {
        format!("resolves to {ip}, which ")
    }
}

fn allow_hint(host: &str, ip: &IpAddr) -> String {
    match normal_host(host).parse::<IpAddr>() {
        Ok(_) => ip.to_string(),
        Err(_) => normal_host(host),
    }
}

/// The addresses gateways may be reached at: every public address, and the non-public ones
/// the operator allowed. Cheap to clone. The default allows no non-public address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Arc<Vec<AllowEntry>>,
}

impl AddressPolicy {
    /// Allows these entries besides the public addresses.
    pub fn allowing(entries: impl IntoIterator<Item = AllowEntry>) -> AddressPolicy {
        AddressPolicy {
            allowed: Arc::new(entries.into_iter().collect()),
        }
    }

    /// Allows the loopback addresses (127.0.0.0/8 and ::1), as tests with local fakes need.
    pub fn allowing_loopback() -> AddressPolicy {
        AddressPolicy::allowing([
            AllowEntry::Network("127.0.0.0/8".parse().expect("a network")),
            AllowEntry::Network("::1/128".parse().expect("a network")),
        ])
    }

    /// The entries allowed.
    pub fn allowed(&self) -> &[AllowEntry] {
        &self.allowed
    }

    /// Whether a URL naming `host` may reach `ip` (one of the addresses `host` resolves to, or
    /// `host` itself when it is an address).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let Some(kind) = non_public(ip) else {
            return Ok(());
        };
        let name = normal_host(host);
        let canonical = ip.to_canonical();
        let allowed = self.allowed.iter().any(|entry| match entry {
            AllowEntry::Network(net) => net.contains(&ip) || net.contains(&canonical),
            AllowEntry::Host(h) => *h == name,
        });
        if allowed {
            Ok(())
        } else {
            Err(Refused {
                host: host.to_string(),
                ip,
                kind,
            })
        }
    }

    /// For a URL whose host is an address: whether it may be reached. `Ok` for a host name
    /// (checked once resolved) and for text that is not a URL (refused elsewhere).
    pub fn check_literal(&self, url: &str) -> Result<(), Refused> {
        let Ok(url) = url::Url::parse(url) else {
            return Ok(());
        };
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.check(url.host_str().unwrap_or_default(), ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<AddressKind> {
        non_public(ip.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_told_apart() {
        for (ip, expected) in [
            ("127.0.0.1", Some(AddressKind::Loopback)),
            ("127.255.0.9", Some(AddressKind::Loopback)),
            ("0.0.0.0", Some(AddressKind::Unspecified)),
            ("10.1.2.3", Some(AddressKind::Private)),
            ("172.16.0.1", Some(AddressKind::Private)),
            ("172.31.255.255", Some(AddressKind::Private)),
            ("192.168.1.1", Some(AddressKind::Private)),
            ("100.64.0.1", Some(AddressKind::Shared)),
            ("100.127.255.254", Some(AddressKind::Shared)),
            ("169.254.169.254", Some(AddressKind::LinkLocal)),
            ("224.0.0.1", Some(AddressKind::Multicast)),
            ("255.255.255.255", Some(AddressKind::Reserved)),
            ("198.18.0.1", Some(AddressKind::Reserved)),
            ("::", Some(AddressKind::Unspecified)),
            ("::1", Some(AddressKind::Loopback)),
            ("::ffff:127.0.0.1", Some(AddressKind::Loopback)),
            ("::ffff:169.254.169.254", Some(AddressKind::LinkLocal)),
            ("::127.0.0.1", Some(AddressKind::Loopback)),
            ("64:ff9b::a00:1", Some(AddressKind::Private)),
            ("2002:7f00:1::1", Some(AddressKind::Loopback)),
            ("fe80::1", Some(AddressKind::LinkLocal)),
            ("fd00:ec2::254", Some(AddressKind::UniqueLocal)),
            ("fc00::1", Some(AddressKind::UniqueLocal)),
            ("ff02::1", Some(AddressKind::Multicast)),
            ("8.8.8.8", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("172.32.0.1", None),
            ("2001:4860:4860::8888", None),
            ("::ffff:8.8.8.8", None),
        ] {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn allow_entries_read_addresses_networks_and_names() {
        let net = |s: &str| AllowEntry::Network(s.parse().unwrap());
        assert_eq!("127.0.0.1".parse(), Ok(net("127.0.0.1/32")));
        assert_eq!("[::1]".parse(), Ok(net("::1/128")));
        assert_eq!(" 10.1.2.3/8 ".parse(), Ok(net("10.0.0.0/8")));
        assert_eq!("fd00::/8".parse(), Ok(net("fd00::/8")));
        assert_eq!(
            "Kannel.Internal.".parse(),
            Ok(AllowEntry::Host("kannel.internal".into()))
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "",
            "a b",
            "http://x/",
            "-x",
            "1.2.3/8",
        ] {
            let e = bad.parse::<AllowEntry>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad:?} is not an IP address, a network in CIDR form (10.0.0.0/8) or a host name")
            );
        }
        assert_eq!(net("127.0.0.1/32").to_string(), "127.0.0.1");
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn the_policy_refuses_what_it_does_not_allow() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let strict = AddressPolicy::default();
        assert_eq!(strict.check("sms.example", ip("8.8.8.8")), Ok(()));
        let e = strict.check("127.0.0.1", ip("127.0.0.1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "127.0.0.1 is a loopback address: gateways may not reach loopback, link-local or \
             private addresses unless the server is started with --allow-gateway-host 127.0.0.1"
        );
        let e = strict.check("localhost", ip("::1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "localhost resolves to ::1, which is a loopback address: gateways may not reach \
             loopback, link-local or private addresses unless the server is started with \
             --allow-gateway-host localhost"
        );
        let e = strict.check_literal("http://[::1]:13013/x").unwrap_err();
        assert_eq!((e.host.as_str(), e.kind), ("[::1]", AddressKind::Loopback));
        assert!(
            e.to_string().starts_with("[::1] is a loopback address"),
            "{e}"
        );
        assert!(strict
            .check_literal("http://169.254.169.254/latest")
            .is_err());
        assert!(strict.check_literal("http://[::ffff:7f00:1]/").is_err());
        assert_eq!(strict.check_literal("http://localhost/"), Ok(()));

        let cidr = AddressPolicy::allowing(["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(cidr.check("k", ip("10.9.8.7")), Ok(()));
        assert_eq!(cidr.check("k", ip("::ffff:10.9.8.7")), Ok(()));
        assert!(cidr.check("k", ip("192.168.0.1")).is_err());
        let host = AddressPolicy::allowing(["kannel.internal".parse().unwrap()]);
        assert_eq!(host.check("KANNEL.internal", ip("10.0.0.5")), Ok(()));
        assert!(host.check("other.internal", ip("10.0.0.5")).is_err());
        let loopback = AddressPolicy::allowing_loopback();
        assert_eq!(loopback.check_literal("http://127.0.0.1:9/"), Ok(()));
        assert_eq!(loopback.check_literal("http://[::1]:9/"), Ok(()));
        assert!(loopback.check_literal("http://169.254.169.254/").is_err());
    }
}
