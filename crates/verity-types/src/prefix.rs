//! Ids as people paste them back: the leading hex digits of a 32-byte id, as tables and logs
//! print them abbreviated (`0x48ed607f…`). A prefix names an id when exactly one known id
//! starts with it, as with git's abbreviated commits.

use std::fmt;
use std::str::FromStr;

/// The leading hex digits of an id (1 to 64, after an optional `0x`; a trailing `…` or `...`
/// as tables print it is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix {
    digits: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("an id prefix needs at least one hex digit")]
    Empty,
    #[error("an id has 64 hex digits; `{0}` has more")]
    TooLong(String),
    #[error("`{0}` is not hex")]
    NotHex(String),
}

impl FromStr for IdPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let s = s.trim();
        let s = s
            .strip_suffix('…')
            .or_else(|| s.strip_suffix("..."))
            .unwrap_or(s);
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.len() > 64 {
            // Named by its start only: the input may be long, and errors echo it.
            let start: String = s.chars().take(20).collect();
            return Err(PrefixError::TooLong(format!("{start}…")));
        }
        let digits = digits.to_ascii_lowercase();
        if digits.is_empty() {
            return Err(PrefixError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PrefixError::NotHex(s.to_string()));
        }
        Ok(IdPrefix { digits })
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.digits)
    }
}

/// Ids listed when a prefix is ambiguous.
pub const AMBIGUOUS_SHOWN: usize = 5;

impl IdPrefix {
    /// The whole id, if all 64 digits were given.
    pub fn full(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.digits, &mut out).ok()?;
        Some(out)
    }

    /// The smallest and largest 32-byte ids that start with this prefix.
    pub fn bounds(&self) -> ([u8; 32], [u8; 32]) {
        let pad = |fill: char| {
            let mut text = self.digits.clone();
            while text.len() < 64 {
                text.push(fill);
            }
            let mut out = [0u8; 32];
            hex::decode_to_slice(&text, &mut out).expect("64 hex digits");
            out
        };
        (pad('0'), pad('f'))
    }

    /// The keys that start with this prefix, in order: at most [`AMBIGUOUS_SHOWN`] + 1 (so a
    /// reader can tell "these" from "these and more"), read from a bounded range whatever the
    /// map's size. `range` lists an ordered map's keys in a range (any ordered map will do);
    /// ids are ordered by their bytes, as every digest-like id is; `id` builds a key from 32
    /// bytes.
    pub fn matches<K, I: Iterator<Item = K>>(
        &self,
        range: impl FnOnce(std::ops::RangeInclusive<K>) -> I,
        id: impl Fn([u8; 32]) -> K,
    ) -> Vec<K> {
        let (lo, hi) = self.bounds();
        range(id(lo)..=id(hi)).take(AMBIGUOUS_SHOWN + 1).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn id(first: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..first.len()].copy_from_slice(first);
        out
    }

    #[test]
    fn a_prefix_names_the_one_id_it_starts_and_says_when_it_starts_several() {
        let map: BTreeMap<[u8; 32], ()> = [
            id(&[0x48, 0xed, 0x60]),
            id(&[0x48, 0xed, 0x61]),
            id(&[0x48, 0x00]),
            id(&[0xff]),
        ]
        .into_iter()
        .map(|k| (k, ()))
        .collect();
        let resolve = |s: &str| {
            s.parse::<IdPrefix>()
                .unwrap()
                .matches(|r| map.range(r).map(|(k, _)| *k), |b| b)
        };
        assert_eq!(resolve("0x48ed60"), vec![id(&[0x48, 0xed, 0x60])]);
        // As a table prints it, and in capitals.
        assert_eq!(resolve("0x48ED61…"), vec![id(&[0x48, 0xed, 0x61])]);
        assert_eq!(resolve("0X48ED61"), vec![id(&[0x48, 0xed, 0x61])]);
        assert_eq!(
            resolve("48ed"),
            vec![id(&[0x48, 0xed, 0x60]), id(&[0x48, 0xed, 0x61])]
        );
        // An odd number of digits is a prefix too.
        assert_eq!(resolve("0x480"), vec![id(&[0x48, 0x00])]);
        assert_eq!(resolve("f"), vec![id(&[0xff])]);
        assert_eq!(resolve("0x47"), Vec::<[u8; 32]>::new());
        // A whole id is its own prefix.
        let whole = hex::encode(id(&[0xff]));
        assert_eq!(resolve(&whole), vec![id(&[0xff])]);
        assert_eq!(whole.parse::<IdPrefix>().unwrap().full(), Some(id(&[0xff])));
    }

    #[test]
    fn ambiguity_lists_a_bounded_few() {
        let map: BTreeMap<[u8; 32], ()> = (0u8..100).map(|i| (id(&[0xab, i]), ())).collect();
        let shown = "ab"
            .parse::<IdPrefix>()
            .unwrap()
            .matches(|r| map.range(r).map(|(k, _)| *k), |b| b);
        assert_eq!(
            shown.len(),
            AMBIGUOUS_SHOWN + 1,
            "the shown few, and a sign of more"
        );
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        assert_eq!("0x".parse::<IdPrefix>(), Err(PrefixError::Empty));
        assert_eq!("…".parse::<IdPrefix>(), Err(PrefixError::Empty));
        assert!(matches!(
            "0xzz".parse::<IdPrefix>(),
            Err(PrefixError::NotHex(_))
        ));
        // A long input is refused without being echoed whole.
        let Err(PrefixError::TooLong(named)) = "a".repeat(100_000).parse::<IdPrefix>() else {
            panic!("too long");
        };
        assert!(named.chars().count() <= 21, "{named}");
    }
}
