//! Who the client is (SPEC §4): the TCP peer, unless the peer is a trusted proxy, in which case the
//! right-most address of `Forwarded` (RFC 7239) or `X-Forwarded-For` that is not itself a trusted
//! proxy. Addresses left of it were written by the client and prove nothing.
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDRs (`10.0.0.0/8, fd00::/8`); a bare address is its own /32 or /128.
    pub fn parse(text: &str) -> Result<Self, String> {
        let nets = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {item:?} is not a CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(nets))
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`, given the values of the `Forwarded` and `X-Forwarded-For` headers
    /// in the order received. `Forwarded` wins when both are present; an entry that is not an
    /// address (`unknown`, an obfuscated name) ends the walk at the hop that wrote it.
    pub fn client_address(
        &self,
        peer: IpAddr,
        forwarded: &[&str],
        forwarded_for: &[&str],
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain: Vec<&str> = if forwarded.is_empty() {
            forwarded_for
                .iter()
                .flat_map(|value| value.split(','))
                .collect()
        } else {
            forwarded
                .iter()
                .flat_map(|value| value.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .find_map(|pair| {
                            let (name, value) = pair.trim().split_once('=')?;
                            name.eq_ignore_ascii_case("for").then_some(value)
                        })
                        .unwrap_or("")
                })
                .collect()
        };
        let mut client = peer;
        for entry in chain.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_node(entry) {
                Some(address) => client = address,
                None => break,
            }
        }
        client.to_canonical()
    }
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`, each possibly quoted.
fn parse_node(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let client = proxies.client_address(ip("203.0.113.9"), &[], &["198.51.100.1"]);
        assert_eq!(client, ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("10.0.0.1"), &["for=198.51.100.1"], &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 2001:db8:ffff::/48").unwrap();
        let client =
            proxies.client_address(ip("10.0.0.1"), &[], &["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            client,
            ip("198.51.100.7"),
            "the client wrote 6.6.6.6 itself"
        );
        let forwarded = [
            r#"for=6.6.6.6, for="[2001:db8::17]:4711";proto=https"#,
            "for=10.9.9.9",
        ];
        let client = proxies.client_address(ip("10.0.0.1"), &forwarded, &["7.7.7.7"]);
        assert_eq!(
            client,
            ip("2001:db8::17"),
            "Forwarded wins over X-Forwarded-For"
        );
        let client = proxies.client_address(ip("10.0.0.1"), &[], &["unknown, 10.2.2.2"]);
        assert_eq!(
            client,
            ip("10.2.2.2"),
            "the walk ends at a hop it cannot read"
        );
        assert_eq!(
            proxies.client_address(ip("::ffff:10.0.0.1"), &[], &["198.51.100.7"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_proxy_list_that_is_not_cidrs_is_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8, nonsense").is_err());
        assert_eq!(
            TrustedProxies::parse(" ").unwrap(),
            TrustedProxies::default()
        );
        assert!(TrustedProxies::parse("192.0.2.1").is_ok());
    }
}
