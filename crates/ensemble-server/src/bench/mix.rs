//! The operation mix: which kinds of request the load generator sends, in what proportion.
//!
//! Contract: a [`Mix`] parses from `kind=weight[,kind=weight...]` (e.g.
//! `get=60,set=30,create=10`); weights are relative, need not add up to 100, and at least
//! one must be positive. [`Mix::pick`] maps a roll in `0..Mix::total()` to a kind, so a
//! uniform roll gives each kind its share. The canonical text form (kinds in
//! [`OpKind::ALL`] order, zero weights dropped) is what reports print.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::protocol::OpCode;

/// One kind of request the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `create` of a new persistent node under the bench root.
    Create,
    /// `setData` of a random key, any version.
    Set,
    /// `getData` of a random key.
    Get,
    /// `exists` of a random key.
    Exists,
    /// `delete` of a node this session created earlier (a `create` when there is none).
    Delete,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Create,
        OpKind::Set,
        OpKind::Get,
        OpKind::Exists,
        OpKind::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Exists => "exists",
            OpKind::Delete => "delete",
        }
    }

    /// The opcode of the request this kind sends (needed to decode its reply).
    pub fn op_code(self) -> OpCode {
        match self {
            OpKind::Create => OpCode::Create,
            OpKind::Set => OpCode::SetData,
            OpKind::Get => OpCode::GetData,
            OpKind::Exists => OpCode::Exists,
            OpKind::Delete => OpCode::Delete,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a `--mix` value is not a mix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MixError {
    #[error("`{0}` is not `kind=weight` (kinds: create, set, get, exists, delete)")]
    NotAPair(String),
    #[error("unknown operation `{0}` (kinds: create, set, get, exists, delete)")]
    UnknownKind(String),
    #[error("weight of `{kind}` is `{weight}`, not a whole number")]
    BadWeight { kind: String, weight: String },
    #[error("`{0}` is given twice")]
    Duplicate(&'static str),
    #[error("every weight is zero: nothing to send")]
    Empty,
    #[error("weights add up to more than {}", u32::MAX)]
    TooLarge,
}

/// Relative weights of each [`OpKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; OpKind::ALL.len()],
    total: u32,
}

impl Mix {
    /// The sum of all weights: rolls are taken in `0..total()`.
    pub fn total(&self) -> u32 {
        self.total
    }

    pub fn weight(&self, kind: OpKind) -> u32 {
        self.weights[kind.index()]
    }

    /// Kinds with a positive weight, in [`OpKind::ALL`] order.
    pub fn kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        OpKind::ALL.into_iter().filter(|k| self.weight(*k) > 0)
    }

    /// The kind that `roll` (taken modulo [`Mix::total`]) falls on.
    pub fn pick(&self, roll: u32) -> OpKind {
        let mut roll = roll % self.total;
        for kind in OpKind::ALL {
            let weight = self.weight(kind);
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        // Unreachable while `total` is the sum of the weights; any answer is harmless.
        OpKind::Get
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(text: &str) -> Result<Self, MixError> {
        let mut weights = [0u32; OpKind::ALL.len()];
        let mut seen = [false; OpKind::ALL.len()];
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = item
                .split_once('=')
                .ok_or_else(|| MixError::NotAPair(item.to_owned()))?;
            let (name, weight) = (name.trim(), weight.trim());
            let kind = OpKind::ALL
                .into_iter()
                .find(|k| k.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| MixError::UnknownKind(name.to_owned()))?;
            let weight: u32 = weight.parse().map_err(|_| MixError::BadWeight {
                kind: name.to_owned(),
                weight: weight.to_owned(),
            })?;
            if std::mem::replace(&mut seen[kind.index()], true) {
                return Err(MixError::Duplicate(kind.name()));
            }
            weights[kind.index()] = weight;
        }
        let total = weights
            .iter()
            .try_fold(0u32, |sum, w| sum.checked_add(*w))
            .ok_or(MixError::TooLarge)?;
        if total == 0 {
            return Err(MixError::Empty);
        }
        Ok(Self { weights, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, kind) in self.kinds().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{kind}={}", self.weight(kind))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let mix: Mix = " get=60, set=30 ,CREATE=10,exists=0"
            .parse()
            .expect("valid");
        assert_eq!(mix.total(), 100);
        assert_eq!(mix.weight(OpKind::Get), 60);
        assert_eq!(mix.weight(OpKind::Exists), 0);
        assert_eq!(mix.to_string(), "create=10,set=30,get=60");
        assert_eq!(
            mix.kinds().collect::<Vec<_>>(),
            [OpKind::Create, OpKind::Set, OpKind::Get]
        );
    }

    #[test]
    fn rejects_what_is_not_a_mix() {
        assert_eq!("".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!("get=0".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!(
            "get".parse::<Mix>(),
            Err(MixError::NotAPair("get".to_owned()))
        );
        assert_eq!(
            "read=5".parse::<Mix>(),
            Err(MixError::UnknownKind("read".to_owned()))
        );
        assert!(matches!(
            "get=-1".parse::<Mix>(),
            Err(MixError::BadWeight { .. })
        ));
        assert_eq!(
            "get=1,get=2".parse::<Mix>(),
            Err(MixError::Duplicate("get"))
        );
        assert_eq!(
            "get=4294967295,set=1".parse::<Mix>(),
            Err(MixError::TooLarge)
        );
    }

    #[test]
    fn every_roll_lands_in_proportion() {
        let mix: Mix = "create=1,get=3,delete=2".parse().expect("valid");
        let mut counts = std::collections::BTreeMap::new();
        for roll in 0..mix.total() * 100 {
            *counts.entry(mix.pick(roll)).or_insert(0) += 1;
        }
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                (OpKind::Create, 100),
                (OpKind::Get, 300),
                (OpKind::Delete, 200)
            ]
        );
    }
}
