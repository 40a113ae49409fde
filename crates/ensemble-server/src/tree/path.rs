//! Znode path rules, as Apache ZooKeeper's `PathUtils.validatePath` applies them.
//!
//! Contract: [`validate_path`] accepts exactly the paths ZooKeeper accepts. ZooKeeper
//! checks UTF-16 code units, so every character outside the Basic Multilingual Plane
//! (a surrogate pair in Java) is rejected, as are U+0001–U+001F, U+007F–U+009F,
//! U+D800–U+F8FF and U+FFF0–U+FFFF, NUL, empty segments, `.` and `..` segments and a
//! trailing `/`.

use thiserror::Error;

/// Why a path is not a valid znode path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path must not be empty")]
    Empty,
    #[error("path must start with /")]
    NotAbsolute,
    #[error("path must not end with /")]
    TrailingSlash,
    #[error("null character at position {0}")]
    NullCharacter(usize),
    #[error("empty node name at position {0}")]
    EmptySegment(usize),
    #[error("relative path segment at position {0}")]
    Relative(usize),
    #[error("invalid character at position {0}")]
    InvalidCharacter(usize),
}

fn is_forbidden(c: char) -> bool {
    let c = u32::from(c);
    (0x01..=0x1f).contains(&c)
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        || c > 0xffff
}

/// Checks `path` against ZooKeeper's rules; positions are character indexes.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    let chars: Vec<char> = path.chars().collect();
    match chars.first() {
        None => return Err(PathError::Empty),
        Some('/') => {}
        Some(_) => return Err(PathError::NotAbsolute),
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars.last() == Some(&'/') {
        return Err(PathError::TrailingSlash);
    }
    for i in 1..chars.len() {
        let c = chars[i];
        let last = chars[i - 1];
        let segment_ends = i + 1 == chars.len() || chars[i + 1] == '/';
        if c == '\0' {
            return Err(PathError::NullCharacter(i));
        } else if c == '/' && last == '/' {
            return Err(PathError::EmptySegment(i));
        } else if c == '.' && last == '.' {
            if i >= 2 && chars[i - 2] == '/' && segment_ends {
                return Err(PathError::Relative(i));
            }
        } else if c == '.' {
            if last == '/' && segment_ends {
                return Err(PathError::Relative(i));
            }
        } else if is_forbidden(c) {
            return Err(PathError::InvalidCharacter(i));
        }
    }
    Ok(())
}

/// Splits at the last `/`: ("/a", "b") for "/a/b", ("/", "a") for "/a".
/// `None` when there is no `/` at all or `path` is the root.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    let name = &path[slash + 1..];
    if path == "/" {
        return None;
    }
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, name))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_zookeeper_accepts() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/...",
            "/.a",
            "/a..",
            "/a/b.",
            "/é",
            "/\u{ffef}",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_what_zookeeper_rejects() {
        let cases = [
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("/a/", PathError::TrailingSlash),
            ("//", PathError::TrailingSlash),
            ("/a//b", PathError::EmptySegment(3)),
            ("/a/\0", PathError::NullCharacter(3)),
            ("/.", PathError::Relative(1)),
            ("/..", PathError::Relative(2)),
            ("/a/./b", PathError::Relative(3)),
            ("/a/../b", PathError::Relative(4)),
            ("/a\u{1}", PathError::InvalidCharacter(2)),
            ("/\u{7f}", PathError::InvalidCharacter(1)),
            ("/\u{e000}", PathError::InvalidCharacter(1)),
            ("/\u{fff0}", PathError::InvalidCharacter(1)),
            ("/\u{1f600}", PathError::InvalidCharacter(1)),
        ];
        for (path, err) in cases {
            assert_eq!(validate_path(path), Err(err), "{path:?}");
        }
    }

    #[test]
    fn parents() {
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/a/"), Some(("/a", "")));
        assert_eq!(split_parent("/"), None);
        assert_eq!(split_parent("a"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
