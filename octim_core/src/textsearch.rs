//! Substring search over many short texts (the ticket queue's `q`).
//!
//! Each text lives in a slot the caller chooses (a dense `u32`); `find` returns
//! every slot whose text contains the needle, by a SIMD substring search
//! (`memchr::memmem`) over the stored bytes. Texts are UTF-8 and already folded by
//! the caller (case-folding is Unicode-aware in Python); a byte match of a valid
//! UTF-8 needle in valid UTF-8 text is a character match.

use memchr::memmem;

#[derive(Default)]
pub struct TextIndex {
    texts: Vec<Option<Box<str>>>,
    len: usize,
}

impl TextIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Store (or replace) the text of `slot`.
    pub fn set(&mut self, slot: u32, text: &str) {
        let at = slot as usize;
        if at >= self.texts.len() {
            self.texts.resize(at + 1, None);
        }
        if self.texts[at].is_none() {
            self.len += 1;
        }
        self.texts[at] = Some(text.into());
    }

    /// Forget `slot`; true if it held a text.
    pub fn remove(&mut self, slot: u32) -> bool {
        match self.texts.get_mut(slot as usize) {
            Some(entry @ Some(_)) => {
                *entry = None;
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every slot whose text contains `needle`, in slot order (all slots for "").
    pub fn find(&self, needle: &str) -> Vec<u32> {
        let finder = memmem::Finder::new(needle.as_bytes());
        self.texts
            .iter()
            .enumerate()
            .filter_map(|(slot, text)| match text {
                Some(t) if finder.find(t.as_bytes()).is_some() => Some(slot as u32),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_substrings_in_the_slots_that_hold_them() {
        let mut index = TextIndex::new();
        index.set(0, "t-1\n包裹丢失\n快递三天没动");
        index.set(2, "t-2\n退款未到账");
        index.set(5, "t-3\n快递破损");
        assert_eq!(index.len(), 3);
        assert_eq!(index.find("快递"), vec![0, 5]);
        assert_eq!(index.find("退款"), vec![2]);
        assert_eq!(index.find("t-"), vec![0, 2, 5]);
        assert!(index.find("发票").is_empty());
        assert_eq!(index.find(""), vec![0, 2, 5]);
    }

    #[test]
    fn replacing_and_removing_change_what_is_found() {
        let mut index = TextIndex::new();
        index.set(1, "快递");
        index.set(1, "退款");
        assert_eq!(index.len(), 1);
        assert!(index.find("快递").is_empty());
        assert!(index.remove(1));
        assert!(!index.remove(1));
        assert!(!index.remove(99));
        assert!(index.is_empty());
        assert!(index.find("退款").is_empty());
    }

    #[test]
    fn a_needle_never_matches_across_a_character_boundary_wrongly() {
        // "快" is E5 BF AB; text holding other characters whose bytes straddle must
        // not match unless the character itself is there.
        let mut index = TextIndex::new();
        index.set(0, "忄快");
        index.set(1, "abc");
        assert_eq!(index.find("快"), vec![0]);
        assert!(index.find("\u{00bf}").is_empty());
    }
}
