//! The LMDB key codec for ordered per-scope records.
//!
//! A key is `scope ++ 0x00 ++ seq as 8 big-endian bytes`. The separator sorts
//! below every byte a scope may contain and the sequence number is fixed-width
//! big-endian, so LMDB's byte order is (scope, seq) order: one conversation's
//! messages are contiguous and in sequence, and appends are sequential inserts.

use crate::error::{CoreError, CoreResult};

/// LMDB's default maximum key size.
pub const MAX_KEY_LEN: usize = 511;
/// Separator byte plus the big-endian sequence number.
pub const SUFFIX_LEN: usize = 9;
/// Longest scope that still fits a key.
pub const MAX_SCOPE_LEN: usize = MAX_KEY_LEN - SUFFIX_LEN;
/// Most keys one `encode_run` call produces (bounds the buffer it allocates).
pub const MAX_RUN: u64 = 1 << 20;

fn check_scope(scope: &[u8]) -> CoreResult<()> {
    if scope.is_empty() {
        return Err(CoreError::InvalidKey("scope is empty".into()));
    }
    if scope.len() > MAX_SCOPE_LEN {
        return Err(CoreError::InvalidKey(format!(
            "scope is {} bytes, the limit is {MAX_SCOPE_LEN}",
            scope.len()
        )));
    }
    if scope.contains(&0) {
        return Err(CoreError::InvalidKey("scope contains a NUL byte".into()));
    }
    Ok(())
}

/// Encode one `(scope, seq)` key.
pub fn encode(scope: &str, seq: u64) -> CoreResult<Vec<u8>> {
    let s = scope.as_bytes();
    check_scope(s)?;
    let mut out = Vec::with_capacity(s.len() + SUFFIX_LEN);
    out.extend_from_slice(s);
    out.push(0);
    out.extend_from_slice(&seq.to_be_bytes());
    Ok(out)
}

/// Encode the keys `first..first+count` of one scope as one flat buffer of
/// equal-length keys (`len(scope) + 9` bytes each), for batch writes.
pub fn encode_run(scope: &str, first: u64, count: u64) -> CoreResult<Vec<u8>> {
    let s = scope.as_bytes();
    check_scope(s)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_RUN {
        return Err(CoreError::InvalidKey(format!(
            "run of {count} keys, the limit is {MAX_RUN}"
        )));
    }
    let last = first
        .checked_add(count - 1)
        .ok_or_else(|| CoreError::InvalidKey("sequence run overflows u64".into()))?;
    let key_len = s.len() + SUFFIX_LEN;
    let mut out = Vec::with_capacity(key_len * count as usize);
    for seq in first..=last {
        out.extend_from_slice(s);
        out.push(0);
        out.extend_from_slice(&seq.to_be_bytes());
    }
    Ok(out)
}

/// Decode a key back into `(scope, seq)`.
pub fn decode(key: &[u8]) -> CoreResult<(String, u64)> {
    if key.len() < SUFFIX_LEN + 1 {
        return Err(CoreError::InvalidKey(format!(
            "key is {} bytes, shorter than the minimum {}",
            key.len(),
            SUFFIX_LEN + 1
        )));
    }
    let split = key.len() - SUFFIX_LEN;
    let (scope, suffix) = key.split_at(split);
    if suffix[0] != 0 {
        return Err(CoreError::InvalidKey("separator byte missing".into()));
    }
    check_scope(scope)?;
    let scope = std::str::from_utf8(scope)
        .map_err(|_| CoreError::InvalidKey("scope is not UTF-8".into()))?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&suffix[1..]);
    Ok((scope.to_owned(), u64::from_be_bytes(seq)))
}

/// The half-open byte range `[lo, hi)` holding every key of `scope`.
pub fn scope_bounds(scope: &str) -> CoreResult<(Vec<u8>, Vec<u8>)> {
    let s = scope.as_bytes();
    check_scope(s)?;
    let mut lo = Vec::with_capacity(s.len() + 1);
    lo.extend_from_slice(s);
    lo.push(0);
    let mut hi = lo.clone();
    *hi.last_mut().unwrap() = 1;
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (scope, seq) in [("c1", 0u64), ("会话-9", 1), ("x", u64::MAX)] {
            let k = encode(scope, seq).unwrap();
            assert_eq!(decode(&k).unwrap(), (scope.to_owned(), seq));
        }
    }

    #[test]
    fn byte_order_is_scope_then_seq_order() {
        let mut keys = vec![
            encode("a", 256).unwrap(),
            encode("a", 2).unwrap(),
            encode("ab", 0).unwrap(),
            encode("a", 1).unwrap(),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| decode(k).unwrap()).collect();
        assert_eq!(
            decoded,
            vec![
                ("a".into(), 1),
                ("a".into(), 2),
                ("a".into(), 256),
                ("ab".into(), 0)
            ]
        );
    }

    #[test]
    fn rejects_bad_scopes() {
        assert!(matches!(encode("", 1), Err(CoreError::InvalidKey(_))));
        assert!(matches!(encode("a\0b", 1), Err(CoreError::InvalidKey(_))));
        let long = "x".repeat(MAX_SCOPE_LEN + 1);
        assert!(matches!(encode(&long, 1), Err(CoreError::InvalidKey(_))));
        assert!(encode(&"x".repeat(MAX_SCOPE_LEN), 1).is_ok());
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(decode(b"short").is_err());
        assert!(decode(b"abc\x01\0\0\0\0\0\0\0\x01").is_err());
        assert!(decode(b"\0\0\0\0\0\0\0\0\x01").is_err());
        assert!(decode(b"\xff\xfe\0\0\0\0\0\0\0\0\x01").is_err());
    }

    #[test]
    fn run_matches_single_encodes() {
        let run = encode_run("conv", 7, 3).unwrap();
        let expected: Vec<u8> = (7..10).flat_map(|s| encode("conv", s).unwrap()).collect();
        assert_eq!(run, expected);
        assert!(encode_run("conv", u64::MAX, 2).is_err());
        assert!(encode_run("conv", u64::MAX, 1).is_ok());
    }

    #[test]
    fn bounds_contain_exactly_the_scope() {
        let (lo, hi) = scope_bounds("a").unwrap();
        let inside = encode("a", u64::MAX).unwrap();
        let other = encode("a\x01", 0).unwrap();
        let longer = encode("ab", 0).unwrap();
        assert!(lo <= encode("a", 0).unwrap() && inside < hi);
        assert!(other >= hi && longer >= hi);
    }
}
