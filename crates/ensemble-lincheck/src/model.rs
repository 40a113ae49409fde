//! The sequential specification: a znode's data as a versioned register.

use std::fmt;

use crate::history::{Command, ErrorCode, Reply, Version};

/// The state of one key: what a correct server would hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register<V> {
    Absent,
    Present { value: V, version: Version },
}

impl<V: Clone> Register<V> {
    /// Runs `command` on this state: the next state and the reply a correct server
    /// gives. A refusal leaves the state as it was.
    pub fn apply(&self, command: &Command<V>) -> (Register<V>, Result<Reply<V>, ErrorCode>) {
        let refuse = |code| (self.clone(), Err(code));
        match (self, command) {
            (Register::Absent, Command::Create(value)) => (
                Register::Present {
                    value: value.clone(),
                    version: 0,
                },
                Ok(Reply::Created),
            ),
            (Register::Absent, _) => refuse(ErrorCode::NoNode),
            (Register::Present { value, version }, Command::Read) => (
                self.clone(),
                Ok(Reply::Data {
                    value: value.clone(),
                    version: *version,
                }),
            ),
            (Register::Present { version, .. }, Command::Write(value)) => {
                overwrite(value, *version)
            }
            (
                Register::Present { version, .. },
                Command::Cas {
                    expected_version,
                    value,
                },
            ) => {
                if expected_version == version {
                    overwrite(value, *version)
                } else {
                    refuse(ErrorCode::BadVersion)
                }
            }
            (Register::Present { .. }, Command::Create(_)) => refuse(ErrorCode::NodeExists),
            (Register::Present { .. }, Command::Delete) => (Register::Absent, Ok(Reply::Deleted)),
        }
    }
}

/// setData: the new value at the next version (ZooKeeper's version wraps like an `int`).
fn overwrite<V: Clone>(value: &V, version: Version) -> (Register<V>, Result<Reply<V>, ErrorCode>) {
    let version = version.wrapping_add(1);
    (
        Register::Present {
            value: value.clone(),
            version,
        },
        Ok(Reply::Stat { version }),
    )
}

impl<V: fmt::Debug> fmt::Display for Register<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Register::Absent => write!(f, "absent"),
            Register::Present { value, version } => write!(f, "{value:?} at version {version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABSENT: Register<u64> = Register::Absent;

    fn present(value: u64, version: Version) -> Register<u64> {
        Register::Present { value, version }
    }

    #[test]
    fn create_only_when_absent() {
        assert_eq!(
            ABSENT.apply(&Command::Create(1)),
            (present(1, 0), Ok(Reply::Created))
        );
        assert_eq!(
            present(1, 3).apply(&Command::Create(2)),
            (present(1, 3), Err(ErrorCode::NodeExists))
        );
    }

    #[test]
    fn everything_but_create_on_an_absent_node_is_no_node() {
        for command in [
            Command::Read,
            Command::Write(1),
            Command::Cas {
                expected_version: 0,
                value: 1,
            },
            Command::Delete,
        ] {
            assert_eq!(ABSENT.apply(&command), (ABSENT, Err(ErrorCode::NoNode)));
        }
    }

    #[test]
    fn writes_bump_the_version_and_cas_checks_it() {
        assert_eq!(
            present(1, 4).apply(&Command::Write(2)),
            (present(2, 5), Ok(Reply::Stat { version: 5 }))
        );
        let cas = |expected_version| Command::Cas {
            expected_version,
            value: 9,
        };
        assert_eq!(
            present(1, 4).apply(&cas(4)),
            (present(9, 5), Ok(Reply::Stat { version: 5 }))
        );
        assert_eq!(
            present(1, 4).apply(&cas(3)),
            (present(1, 4), Err(ErrorCode::BadVersion))
        );
        assert_eq!(
            present(1, Version::MAX).apply(&Command::Write(2)).0,
            present(2, Version::MIN)
        );
    }

    #[test]
    fn read_and_delete() {
        assert_eq!(
            present(7, 2).apply(&Command::Read),
            (
                present(7, 2),
                Ok(Reply::Data {
                    value: 7,
                    version: 2
                })
            )
        );
        assert_eq!(
            present(7, 2).apply(&Command::Delete),
            (ABSENT, Ok(Reply::Deleted))
        );
    }
}
