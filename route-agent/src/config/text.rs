//! Deserialisers for addresses and CIDRs whose errors quote the value and
//! say how to write it (ipnetwork's and std's messages do not).

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

use crate::fib::NexthopMode;

fn parse<'de, D: Deserializer<'de>, T>(d: D, kind: &str, example: &str) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: Display,
{
    let s = String::deserialize(d)?;
    s.trim().parse().map_err(|e| {
        D::Error::custom(format!(
            "`{s}` is not {kind} ({e}) — write it as e.g. {example}"
        ))
    })
}

const CIDR: (&str, &str) = (
    "a CIDR",
    "`10.244.0.0/16` or `fd00:244::/48`: ADDRESS/LENGTH, LENGTH at most 32 for IPv4 and 128 for IPv6",
);
const IP: (&str, &str) = (
    "an IP address",
    "`10.0.0.6` or `fd00::6`, without a prefix length",
);

struct Cidr(IpNetwork);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(d, CIDR.0, CIDR.1).map(Cidr)
    }
}

struct Ip(IpAddr);

impl<'de> Deserialize<'de> for Ip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(d, IP.0, IP.1).map(Ip)
    }
}

/// One CIDR.
pub(super) fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
    Cidr::deserialize(d).map(|c| c.0)
}

/// A list of CIDRs; an error points at the bad item.
pub(super) fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
    Ok(Vec::<Cidr>::deserialize(d)?
        .into_iter()
        .map(|c| c.0)
        .collect())
}

/// A list of addresses; an error points at the bad item.
pub(super) fn ips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    Ok(Vec::<Ip>::deserialize(d)?
        .into_iter()
        .map(|c| c.0)
        .collect())
}

/// An optional IPv4 address.
pub(super) fn ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    s.trim().parse().map(Some).map_err(|e| {
        D::Error::custom(format!(
            "`{s}` is not an IPv4 address ({e}) — write it as e.g. `10.0.0.1`"
        ))
    })
}

/// `nexthop-objects`: `auto`, `true` or `false`.
pub(super) fn nexthop_mode<'de, D: Deserializer<'de>>(d: D) -> Result<NexthopMode, D::Error> {
    struct Mode;
    impl serde::de::Visitor<'_> for Mode {
        type Value = NexthopMode;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "`auto` (objects for tables of over 1,000 gateway routes), `true` or `false`",
            )
        }
        fn visit_bool<E: Error>(self, on: bool) -> Result<NexthopMode, E> {
            Ok(if on {
                NexthopMode::On
            } else {
                NexthopMode::Off
            })
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<NexthopMode, E> {
            match s.trim() {
                "auto" => Ok(NexthopMode::Auto),
                "true" => Ok(NexthopMode::On),
                "false" => Ok(NexthopMode::Off),
                _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
            }
        }
    }
    d.deserialize_any(Mode)
}

/// Writes a [`NexthopMode`] as it is configured.
pub(super) fn write_nexthop_mode<S: Serializer>(
    mode: &NexthopMode,
    s: S,
) -> Result<S::Ok, S::Error> {
    match mode {
        NexthopMode::Auto => s.serialize_str("auto"),
        NexthopMode::On => s.serialize_bool(true),
        NexthopMode::Off => s.serialize_bool(false),
    }
}
