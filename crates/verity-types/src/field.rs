//! Field elements of Miden's prime field, as they appear in user input and on the wire.
//!
//! Miden computes over the Goldilocks field, p = 2^64 - 2^32 + 1. Values are carried as `u64`
//! and every value that enters from outside is checked to be canonical (`< p`): silently
//! reducing `p + 1` to `1` would make two different inputs mean the same thing.

/// The field modulus: 2^64 - 2^32 + 1.
pub const MODULUS: u64 = 0xFFFF_FFFF_0000_0001;

/// Why a piece of text is not a list of field elements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{0}` is not a number: field elements are unsigned decimal integers")]
    NotANumber(String),
    #[error("{0} is not a field element: values must be below 2^64 - 2^32 + 1 = {MODULUS}")]
    OutOfField(String),
    #[error("empty value at position {0} in `{1}`")]
    Empty(usize, String),
}

/// Parses one field element from decimal text.
pub fn parse_felt(text: &str) -> Result<u64, FieldError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::NotANumber(t.to_string()));
    }
    let value: u64 = t
        .parse()
        .map_err(|_| FieldError::OutOfField(t.to_string()))?;
    if value >= MODULUS {
        return Err(FieldError::OutOfField(t.to_string()));
    }
    Ok(value)
}

/// Parses a comma-separated list of field elements (`1,2,3`); the empty string is the empty list.
pub fn parse_felt_list(text: &str) -> Result<Vec<u64>, FieldError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(i, part)| {
            if part.trim().is_empty() {
                Err(FieldError::Empty(i, text.to_string()))
            } else {
                parse_felt(part)
            }
        })
        .collect()
}

/// Formats field elements the way `run`, `verify` and the API print a stack: `1,2,3`, top first.
pub fn format_felts(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_lists() {
        assert_eq!(parse_felt_list("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_felt_list("").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_felt(&(MODULUS - 1).to_string()).unwrap(), MODULUS - 1);
    }

    #[test]
    fn rejects_non_numbers_and_out_of_field_values() {
        assert_eq!(parse_felt("abc"), Err(FieldError::NotANumber("abc".into())));
        assert_eq!(parse_felt("-1"), Err(FieldError::NotANumber("-1".into())));
        assert_eq!(parse_felt("1.5"), Err(FieldError::NotANumber("1.5".into())));
        let p = MODULUS.to_string();
        assert_eq!(parse_felt(&p), Err(FieldError::OutOfField(p.clone())));
        let big = "99999999999999999999999";
        assert_eq!(parse_felt(big), Err(FieldError::OutOfField(big.into())));
        assert_eq!(
            parse_felt_list("1,,2"),
            Err(FieldError::Empty(1, "1,,2".into()))
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(values in proptest::collection::vec(0..MODULUS, 0..20)) {
            prop_assert_eq!(parse_felt_list(&format_felts(&values)).unwrap(), values);
        }
    }
}
