//! Is an encoded frame or body in the storable subset? A scan of the bytes,
//! before Python decodes them (the rules are `octim/values.py`'s, whose
//! `check_storable` over decoded values is the reference implementation).
//!
//! Storable: null, booleans, valid Unicode strings, integers in
//! `[-2**63, 2**64 - 1]`, finite floats, arrays, maps with string keys; every
//! value at most `max_depth` levels deep (the top value is level 1) and at most
//! `max_nodes` values in all. Refused: NaN and ±Infinity (JSON's `NaN`,
//! `Infinity`, a literal that overflows to infinity; msgpack floats), lone
//! UTF-16 surrogates (JSON `\uD800` escapes; any invalid UTF-8), integers past
//! 64 bits, msgpack bin and ext types, non-string map keys.
//!
//! The scan does not replace the decoder's syntax check. On input it cannot
//! follow it answers `Reason::Syntax`, and the caller decodes and checks the
//! value the slow way, so a scanner gap can cost time but never let a value
//! through.

/// Why a value is not storable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TooDeep,
    TooMany,
    NonFinite,
    BigInt,
    BadText,
    Binary,
    KeyNotText,
    /// Not well-formed as far as the scan can tell: let the decoder judge.
    Syntax,
}

impl Reason {
    /// A stable name (the Python layer turns it into a message).
    pub fn name(self) -> &'static str {
        match self {
            Reason::TooDeep => "too_deep",
            Reason::TooMany => "too_many",
            Reason::NonFinite => "non_finite",
            Reason::BigInt => "big_int",
            Reason::BadText => "bad_text",
            Reason::Binary => "binary",
            Reason::KeyNotText => "key_not_text",
            Reason::Syntax => "syntax",
        }
    }
}

/// The first problem and the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    pub offset: usize,
    pub reason: Reason,
}

type Scan = Result<(), Problem>;

fn fail(offset: usize, reason: Reason) -> Scan {
    Err(Problem { offset, reason })
}

struct Budget {
    max_depth: usize,
    nodes_left: usize,
}

impl Budget {
    /// Count one value at `level`.
    fn value(&mut self, level: usize, at: usize) -> Scan {
        if level > self.max_depth {
            return fail(at, Reason::TooDeep);
        }
        if self.nodes_left == 0 {
            return fail(at, Reason::TooMany);
        }
        self.nodes_left -= 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// JSON (as Python's json module reads it: RFC 8259 plus NaN / Infinity)

/// Scan a JSON text.
pub fn check_json(data: &[u8], max_depth: usize, max_nodes: usize) -> Scan {
    if std::str::from_utf8(data).is_err() {
        let at = std::str::from_utf8(data)
            .err()
            .map_or(0, |e| e.valid_up_to());
        return fail(at, Reason::BadText);
    }
    let mut scanner = Json {
        data,
        at: 0,
        budget: Budget {
            max_depth,
            nodes_left: max_nodes,
        },
    };
    scanner.document()
}

struct Json<'a> {
    data: &'a [u8],
    at: usize,
    budget: Budget,
}

/// What the scanner expects next inside a container.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Array,
    Object,
}

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Scan {
        self.skip_ws();
        if self.peek() != Some(byte) {
            return fail(self.at, Reason::Syntax);
        }
        self.at += 1;
        Ok(())
    }

    /// The whole document, iteratively: a hostile depth costs no native stack.
    fn document(&mut self) -> Scan {
        let mut stack: Vec<Frame> = Vec::new();
        self.value_start(&mut stack)?;
        loop {
            let Some(&frame) = stack.last() else {
                self.skip_ws();
                return if self.at == self.data.len() {
                    Ok(())
                } else {
                    fail(self.at, Reason::Syntax)
                };
            };
            self.skip_ws();
            let close = if frame == Frame::Array { b']' } else { b'}' };
            match self.peek() {
                Some(b) if b == close => {
                    self.at += 1;
                    stack.pop();
                }
                Some(b',') => {
                    self.at += 1;
                    if frame == Frame::Object {
                        self.key()?;
                    }
                    self.value_start(&mut stack)?;
                }
                _ => return fail(self.at, Reason::Syntax),
            }
        }
    }

    /// One value; a container is opened (pushed) and its first member scanned.
    fn value_start(&mut self, stack: &mut Vec<Frame>) -> Scan {
        self.skip_ws();
        let start = self.at;
        self.budget.value(stack.len() + 1, start)?;
        match self.peek() {
            Some(open @ (b'[' | b'{')) => {
                let (frame, close) = if open == b'[' {
                    (Frame::Array, b']')
                } else {
                    (Frame::Object, b'}')
                };
                self.at += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Ok(()); // empty: nothing to push
                }
                stack.push(frame);
                if frame == Frame::Object {
                    self.key()?;
                }
                self.value_start(stack)
            }
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true", None),
            Some(b'f') => self.literal(b"false", None),
            Some(b'n') => self.literal(b"null", None),
            Some(b'N') => self.literal(b"NaN", Some(Reason::NonFinite)),
            Some(b'I') => self.literal(b"Infinity", Some(Reason::NonFinite)),
            Some(b'-') if self.data[self.at..].starts_with(b"-Infinity") => {
                fail(start, Reason::NonFinite)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => fail(start, Reason::Syntax),
        }
    }

    fn key(&mut self) -> Scan {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return fail(self.at, Reason::Syntax);
        }
        self.string()?;
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8], refused: Option<Reason>) -> Scan {
        if !self.data[self.at..].starts_with(word) {
            return fail(self.at, Reason::Syntax);
        }
        if let Some(reason) = refused {
            return fail(self.at, reason);
        }
        self.at += word.len();
        Ok(())
    }

    /// A string; lone surrogate escapes are refused (raw bytes are valid UTF-8).
    fn string(&mut self) -> Scan {
        let start = self.at;
        self.at += 1; // the opening quote
        loop {
            match self.peek() {
                None => return fail(start, Reason::Syntax),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    match self.data.get(self.at + 1) {
                        Some(b'u') => {
                            let unit = self.hex4(self.at + 2)?;
                            self.at += 6;
                            if (0xD800..0xDC00).contains(&unit) {
                                // A high surrogate must be followed by an escaped low one.
                                let low = if self.data.get(self.at) == Some(&b'\\')
                                    && self.data.get(self.at + 1) == Some(&b'u')
                                {
                                    self.hex4(self.at + 2)?
                                } else {
                                    0
                                };
                                if !(0xDC00..0xE000).contains(&low) {
                                    return fail(self.at - 6, Reason::BadText);
                                }
                                self.at += 6;
                            } else if (0xDC00..0xE000).contains(&unit) {
                                return fail(self.at - 6, Reason::BadText);
                            }
                        }
                        Some(_) => self.at += 2,
                        None => return fail(start, Reason::Syntax),
                    }
                }
                Some(_) => self.at += 1,
            }
        }
    }

    fn hex4(&self, at: usize) -> Result<u32, Problem> {
        let digits = self.data.get(at..at + 4).ok_or(Problem {
            offset: at,
            reason: Reason::Syntax,
        })?;
        let text = std::str::from_utf8(digits).map_err(|_| Problem {
            offset: at,
            reason: Reason::Syntax,
        })?;
        u32::from_str_radix(text, 16).map_err(|_| Problem {
            offset: at,
            reason: Reason::Syntax,
        })
    }

    fn number(&mut self) -> Scan {
        let start = self.at;
        let mut is_float = false;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => {}
                b'.' | b'e' | b'E' | b'+' | b'-' => is_float = true,
                _ => break,
            }
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.data[start..self.at]).unwrap_or("");
        if is_float {
            // Python reads an overflowing literal (1e400) as infinity.
            return match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(()),
                Ok(_) => fail(start, Reason::NonFinite),
                Err(_) => fail(start, Reason::Syntax),
            };
        }
        let digits = text.trim_start_matches('-');
        if digits.is_empty() {
            return fail(start, Reason::Syntax);
        }
        let fits = if text.starts_with('-') {
            text.parse::<i64>().is_ok()
        } else {
            text.parse::<u64>().is_ok()
        };
        if fits {
            Ok(())
        } else {
            fail(start, Reason::BigInt)
        }
    }
}

// ---------------------------------------------------------------------------
// msgpack

/// Scan one msgpack value (the whole input).
pub fn check_msgpack(data: &[u8], max_depth: usize, max_nodes: usize) -> Scan {
    let mut budget = Budget {
        max_depth,
        nodes_left: max_nodes,
    };
    // (items still to read in this container, is it a map, is the next item a key)
    let mut stack: Vec<(u64, bool, bool)> = Vec::new();
    let mut at = 0usize;
    let mut remaining_top = 1u64;
    while remaining_top > 0 || !stack.is_empty() {
        let is_key = match stack.last_mut() {
            Some((left, is_map, next_is_key)) => {
                if *left == 0 {
                    stack.pop();
                    continue;
                }
                let key = *is_map && *next_is_key;
                if *is_map {
                    *next_is_key = !*next_is_key;
                    if key {
                        // A map entry is counted once, when its key is read.
                    } else {
                        *left -= 1;
                    }
                } else {
                    *left -= 1;
                }
                key
            }
            None => {
                remaining_top -= 1;
                false
            }
        };
        let start = at;
        let tag = *data.get(at).ok_or(Problem {
            offset: at,
            reason: Reason::Syntax,
        })?;
        at += 1;
        if !is_key {
            budget.value(stack.len() + 1, start)?;
        }
        let need = |n: usize, at: usize| -> Result<&[u8], Problem> {
            data.get(at..at + n).ok_or(Problem {
                offset: at,
                reason: Reason::Syntax,
            })
        };
        let be = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let text = |len: usize, at: usize| -> Result<usize, Problem> {
            let bytes = need(len, at)?;
            if std::str::from_utf8(bytes).is_err() {
                return Err(Problem {
                    offset: start,
                    reason: Reason::BadText,
                });
            }
            Ok(len)
        };
        if is_key && !matches!(tag, 0xa0..=0xbf | 0xd9..=0xdb) {
            return fail(start, Reason::KeyNotText);
        }
        match tag {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {}
            0xcc | 0xd0 => at += need(1, at)?.len(),
            0xcd | 0xd1 => at += need(2, at)?.len(),
            0xce | 0xd2 => at += need(4, at)?.len(),
            0xcf | 0xd3 => at += need(8, at)?.len(),
            0xca => {
                let bits = be(need(4, at)?) as u32;
                at += 4;
                if !f32::from_bits(bits).is_finite() {
                    return fail(start, Reason::NonFinite);
                }
            }
            0xcb => {
                let bits = be(need(8, at)?);
                at += 8;
                if !f64::from_bits(bits).is_finite() {
                    return fail(start, Reason::NonFinite);
                }
            }
            0xa0..=0xbf => at += text(usize::from(tag & 0x1f), at)?,
            0xd9..=0xdb => {
                let width = 1usize << (tag - 0xd9);
                let len = be(need(width, at)?) as usize;
                at += width;
                at += text(len, at)?;
            }
            0xc4..=0xc9 | 0xd4..=0xd8 => return fail(start, Reason::Binary),
            0x90..=0x9f | 0xdc | 0xdd | 0x80..=0x8f | 0xde | 0xdf => {
                let (count, is_map) = match tag {
                    0x90..=0x9f => (u64::from(tag & 0x0f), false),
                    0x80..=0x8f => (u64::from(tag & 0x0f), true),
                    0xdc | 0xde => {
                        let n = be(need(2, at)?);
                        at += 2;
                        (n, tag == 0xde)
                    }
                    _ => {
                        let n = be(need(4, at)?);
                        at += 4;
                        (n, tag == 0xdf)
                    }
                };
                if count > 0 {
                    // Children are one level deeper than this container.
                    if stack.len() + 2 > budget.max_depth {
                        return fail(start, Reason::TooDeep);
                    }
                    stack.push((count, is_map, true));
                }
            }
            0xc1 => return fail(start, Reason::Syntax),
        }
    }
    if at != data.len() {
        return fail(at, Reason::Syntax);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<(), Reason> {
        check_json(text.as_bytes(), 32, 100_000).map_err(|p| p.reason)
    }

    #[test]
    fn json_accepts_storable_values() {
        for ok in [
            r#"{"a": [1, -2, 3.5, true, false, null, "x\"y\\z\u00e9"], "b": {}}"#,
            r#""\ud83d\ude00""#,
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "[[[[]]]]",
            " [ ] ",
            r#""你好""#,
        ] {
            assert_eq!(json(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn json_refuses_what_the_store_cannot_hold() {
        assert_eq!(json(r#"{"a": "\ud800"}"#), Err(Reason::BadText));
        assert_eq!(json(r#""\udc00x""#), Err(Reason::BadText));
        assert_eq!(json(r#""\ud800\u0041""#), Err(Reason::BadText));
        assert_eq!(json("18446744073709551616"), Err(Reason::BigInt));
        assert_eq!(json("-9223372036854775809"), Err(Reason::BigInt));
        assert_eq!(json("[NaN]"), Err(Reason::NonFinite));
        assert_eq!(json("Infinity"), Err(Reason::NonFinite));
        assert_eq!(json("[-Infinity]"), Err(Reason::NonFinite));
        assert_eq!(json("1e400"), Err(Reason::NonFinite));
        assert_eq!(
            json(&("[".repeat(40) + &"]".repeat(40))),
            Err(Reason::TooDeep)
        );
        assert_eq!(
            check_json(b"\"\xed\xa0\x80\"", 32, 10).map_err(|p| p.reason),
            Err(Reason::BadText)
        );
        assert_eq!(
            check_json(b"[1,2,3]", 32, 3).map_err(|p| p.reason),
            Err(Reason::TooMany)
        );
    }

    #[test]
    fn json_depth_counts_values_not_brackets() {
        // Level 32 may hold an empty container or a scalar, not a member.
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert_eq!(json(&ok), Ok(()));
        let deep = "[".repeat(32) + "1" + &"]".repeat(32);
        assert_eq!(json(&deep), Err(Reason::TooDeep));
    }

    #[test]
    fn json_syntax_it_cannot_follow_is_left_to_the_decoder() {
        for bad in [
            "[1,",
            "{\"a\" 1}",
            "tru",
            "[1 2]",
            "\"open",
            "01x",
            "{1: 2}",
        ] {
            assert_eq!(json(bad), Err(Reason::Syntax), "{bad}");
        }
    }

    fn mp(data: &[u8]) -> Result<(), Reason> {
        check_msgpack(data, 32, 100_000).map_err(|p| p.reason)
    }

    #[test]
    fn msgpack_accepts_and_refuses() {
        assert_eq!(
            mp(&[0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x91, 0xc3]),
            Ok(())
        );
        assert_eq!(
            mp(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(())
        );
        assert_eq!(
            mp(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
            Err(Reason::NonFinite)
        );
        assert_eq!(mp(&[0xca, 0x7f, 0x80, 0, 0]), Err(Reason::NonFinite));
        assert_eq!(mp(&[0xc4, 0x01, 0x00]), Err(Reason::Binary));
        assert_eq!(mp(&[0xd6, 0xff, 0, 0, 0, 0]), Err(Reason::Binary));
        assert_eq!(mp(&[0x81, 0x01, 0x02]), Err(Reason::KeyNotText));
        assert_eq!(mp(&[0xa2, 0xed, 0xa0]), Err(Reason::BadText));
        assert_eq!(mp(&[0xa3, b'a']), Err(Reason::Syntax)); // a short string
        assert_eq!(mp(&[0xa3, 0xed, 0xa0, 0x80]), Err(Reason::BadText));
        let mut deep = vec![0x91; 40];
        deep.push(0x01);
        assert_eq!(mp(&deep), Err(Reason::TooDeep));
        assert_eq!(mp(&[0x92, 0x01]), Err(Reason::Syntax)); // truncated
        assert_eq!(mp(&[0x01, 0x02]), Err(Reason::Syntax)); // trailing bytes
        assert_eq!(
            check_msgpack(&[0x93, 1, 2, 3], 32, 3).map_err(|p| p.reason),
            Err(Reason::TooMany)
        );
    }

    #[test]
    fn msgpack_depth_matches_json() {
        let mut ok = vec![0x91; 31];
        ok.push(0x90); // 31 non-empty arrays, then an empty one at level 32
        assert_eq!(mp(&ok), Ok(()));
        let mut deep = vec![0x91; 32];
        deep.push(0x01);
        assert_eq!(mp(&deep), Err(Reason::TooDeep));
    }
}
