//! ACL evaluation, as Apache ZooKeeper's `ZooKeeperServer.checkACL`,
//! `PrepRequestProcessor.fixupACL` and its digest and ip providers do it.
//!
//! Contract, all pure:
//! - [`allows`]: may a session holding `auth` ids do `perm` on a node with `acl`?
//!   An empty ACL allows everything; an id with scheme `super` allows everything;
//!   an entry matches when any of its perm bits is requested and its id is
//!   `world:anyone`, an equal `digest` id, or an `ip` CIDR containing the session's ip.
//! - [`fixup_acl`]: the ACL a create/setACL stores: duplicates dropped, `auth:` entries
//!   expanded to the session's digest ids, anything malformed → `InvalidAcl`.
//! - [`digest_id`]/[`authenticate_digest`]: `user:base64(sha1("user:password"))`.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::protocol::{Acl, ErrorCode, Id};

/// The scheme of the super user's id, added by a successful super-digest auth.
pub const SUPER_SCHEME: &str = "super";

/// ZooKeeper's digest of `user:password`: `user:` + base64(sha1(whole string)).
/// `user` is everything before the first `:`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The ids an `addauth digest user:password` grants: the digest id, preceded by
/// `super:` when its digest equals the configured super digest.
pub fn authenticate_digest(auth_data: &[u8], super_digest: Option<&str>) -> Vec<Id> {
    let user_password = String::from_utf8_lossy(auth_data);
    let digest = digest_id(&user_password);
    let mut ids = Vec::with_capacity(2);
    if super_digest == Some(digest.as_str()) {
        ids.push(Id::new(SUPER_SCHEME, ""));
    }
    ids.push(Id::new("digest", digest));
    ids
}

/// How many parts Java's `String.split(sep)` yields (it drops trailing empty parts).
fn java_split_count(s: &str, sep: char) -> usize {
    let parts: Vec<&str> = s.split(sep).collect();
    let trailing_empty = parts.iter().rev().take_while(|p| p.is_empty()).count();
    if trailing_empty == parts.len() {
        // Java returns [""] for "" and [] for a string of separators only.
        return usize::from(s.is_empty());
    }
    parts.len() - trailing_empty
}

/// Whether an id is well formed for its scheme (the providers' `isValid`).
/// Only `digest` and `ip` providers exist; `world:anyone` is handled by callers.
fn provider_accepts(id: &Id) -> bool {
    match id.scheme.as_str() {
        "digest" => java_split_count(&id.id, ':') == 2,
        "ip" => parse_cidr(&id.id).is_some(),
        _ => false,
    }
}

/// See the module contract.
pub fn fixup_acl(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            out.push(entry.clone());
        } else if id.scheme == "auth" {
            // Only the digest provider counts as "authenticated" among ours.
            let mut any = false;
            for cid in auth.iter().filter(|cid| cid.scheme == "digest") {
                any = true;
                out.push(Acl::new(entry.perms, cid.clone()));
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if provider_accepts(id) {
            out.push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// See the module contract.
pub fn allows(acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == SUPER_SCHEME) {
        return true;
    }
    acl.iter().any(|entry| {
        if entry.perms & perm == 0 {
            return false;
        }
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            return true;
        }
        auth.iter()
            .filter(|a| a.scheme == id.scheme)
            .any(|a| match id.scheme.as_str() {
                "digest" => a.id == id.id,
                "ip" => ip_matches(&a.id, &id.id),
                _ => false,
            })
    })
}

/// Parses an address the way the ip provider does: IPv6 if it has a `:`, IPv4 if it
/// has a `.`, as bytes.
fn parse_addr(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        parse_v6(addr)
    } else if addr.contains('.') {
        parse_v4(addr)
    } else {
        None
    }
}

fn parse_v4(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            p.parse::<i32>()
                .ok()
                .filter(|v| (0..=255).contains(v))
                .map(|v| v as u8)
        })
        .collect()
}

fn parse_v6(addr: &str) -> Option<Vec<u8>> {
    let halves: Vec<&str> = addr.split("::").collect();
    let split = |s: &str| -> Vec<String> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split(':').map(str::to_owned).collect()
        }
    };
    let (head, tail) = match halves.as_slice() {
        [all] => {
            let segs: Vec<String> = all.split(':').map(str::to_owned).collect();
            if segs.len() != 8 {
                return None;
            }
            (segs, Vec::new())
        }
        [a, b] => {
            let (head, tail) = (split(a), split(b));
            if head.len() + tail.len() >= 8 {
                return None;
            }
            (head, tail)
        }
        _ => return None,
    };
    let mut out = vec![0u8; 16];
    let mut write = |start: usize, segs: &[String]| -> Option<()> {
        for (k, seg) in segs.iter().enumerate() {
            if seg.is_empty() || seg.chars().count() > 4 {
                return None;
            }
            let v = i32::from_str_radix(seg, 16).ok()?;
            out[start + 2 * k] = ((v >> 8) & 0xff) as u8;
            out[start + 2 * k + 1] = (v & 0xff) as u8;
        }
        Some(())
    };
    write(0, &head)?;
    write(16 - 2 * tail.len(), &tail)?;
    Some(out)
}

/// An `ip` ACL expression: an address and an optional `/bits` prefix length.
fn parse_cidr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = parse_addr(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        None => max,
        Some(b) => usize::try_from(b.parse::<i32>().ok()?)
            .ok()
            .filter(|b| *b <= max)?,
    };
    Some((bytes, bits))
}

fn mask(bytes: &mut [u8], bits: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
}

/// Whether the client address `ip` falls in the ACL expression `expr`.
pub fn ip_matches(ip: &str, expr: &str) -> bool {
    let Some((mut acl_addr, bits)) = parse_cidr(expr) else {
        return false;
    };
    let Some(mut remote) = parse_addr(ip) else {
        return false;
    };
    if remote.len() != acl_addr.len() {
        return false;
    }
    mask(&mut acl_addr, bits);
    mask(&mut remote, bits);
    acl_addr == remote
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // Known value: DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(digest_id("user"), "user:Et6pb+wgWTVmq3VpLJlJWWgzrck=");
    }

    #[test]
    fn super_digest_grants_super() {
        let ids = authenticate_digest(b"super:test", Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="));
        assert_eq!(ids[0], Id::new("super", ""));
        let acl = vec![Acl::new(perms::READ, Id::new("digest", "x:y"))];
        assert!(allows(&acl, perms::WRITE, &ids));
        assert!(!allows(&acl, perms::WRITE, &ids[1..]));
    }

    #[test]
    fn world_digest_and_ip() {
        let bob = Id::new("digest", digest_id("bob:pw"));
        let acl = vec![
            Acl::new(perms::READ, Id::anyone()),
            Acl::new(perms::ALL, bob.clone()),
            Acl::new(perms::WRITE, Id::new("ip", "10.1.0.0/16")),
        ];
        assert!(allows(&acl, perms::READ, &[]));
        assert!(!allows(&acl, perms::WRITE, &[]));
        assert!(allows(&acl, perms::ADMIN, std::slice::from_ref(&bob)));
        assert!(allows(&acl, perms::WRITE, &[Id::new("ip", "10.1.200.3")]));
        assert!(!allows(&acl, perms::WRITE, &[Id::new("ip", "10.2.0.1")]));
        assert!(!allows(&acl, perms::DELETE, &[Id::new("ip", "10.1.0.1")]));
        // Any requested bit suffices (getACL asks for READ|ADMIN).
        assert!(allows(&acl, perms::READ | perms::ADMIN, &[]));
        assert!(allows(&[], perms::ALL, &[]));
    }

    #[test]
    fn ip_expressions() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("127.0.0.1", "127.0.0.0/8"));
        assert!(ip_matches("192.168.1.7", "0.0.0.0/0"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.2"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.0/33"));
        assert!(ip_matches("::1", "0:0:0:0:0:0:0:1"));
        assert!(ip_matches("fe80::1:2", "fe80::/16"));
        assert!(!ip_matches("::1", "127.0.0.1"));
        assert!(!ip_matches("1.2.3", "1.2.3.0/24"));
        assert!(parse_v6("1:2:3:4:5:6:7:8:9").is_none());
        assert!(parse_v6("1::2::3").is_none());
        assert!(parse_v6("12345::").is_none());
    }

    #[test]
    fn fixup_rules() {
        let open = Acl::open_unsafe();
        assert_eq!(
            fixup_acl(&[open[0].clone(), open[0].clone()], &[]),
            Ok(open)
        );
        assert_eq!(fixup_acl(&[], &[]), Err(ErrorCode::InvalidAcl));
        let auth_acl = [Acl::new(perms::ALL, Id::new("auth", ""))];
        assert_eq!(
            fixup_acl(&auth_acl, &[Id::new("ip", "1.2.3.4")]),
            Err(ErrorCode::InvalidAcl)
        );
        let bob = Id::new("digest", "bob:hash");
        assert_eq!(
            fixup_acl(&auth_acl, &[Id::new("ip", "1.2.3.4"), bob.clone()]),
            Ok(vec![Acl::new(perms::ALL, bob)])
        );
        let bad = |scheme: &str, id: &str| fixup_acl(&[Acl::new(1, Id::new(scheme, id))], &[]);
        assert_eq!(bad("world", "someone"), Err(ErrorCode::InvalidAcl));
        assert_eq!(bad("digest", "nocolon"), Err(ErrorCode::InvalidAcl));
        assert_eq!(bad("digest", "a:b:c"), Err(ErrorCode::InvalidAcl));
        assert!(
            bad("digest", "a:b:").is_ok(),
            "Java's split drops trailing empties"
        );
        assert_eq!(bad("ip", "1.2.3.4/40"), Err(ErrorCode::InvalidAcl));
        assert_eq!(bad("sasl", "x"), Err(ErrorCode::InvalidAcl));
        assert!(bad("ip", "1.2.3.4/24").is_ok());
    }

    #[test]
    fn java_split() {
        assert_eq!(java_split_count("a:b", ':'), 2);
        assert_eq!(java_split_count(":b", ':'), 2);
        assert_eq!(java_split_count("a:", ':'), 1);
        assert_eq!(java_split_count("", ':'), 1);
        assert_eq!(java_split_count("::", ':'), 0);
    }
}
