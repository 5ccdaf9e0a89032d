//! Budget forcing (s1, Muennighoff et al. 2025) inside generation: a per
//! sequence state machine that the sampler asks for the token to emit at
//! every step. It can replace the sampled token, which is how the
//! end-of-thinking delimiter is forced at the maximum and how an early end
//! is turned into the wait string below the minimum.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::vocab::Vocab;

/// One request's budget, with its strings already tokenized.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub max: Option<u32>,
    pub min: u32,
    pub max_waits: u32,
    /// The wait string's tokens after whitespace, and after other text (a
    /// space first, unless the string starts with whitespace).
    pub wait: Vec<u32>,
    pub wait_after_text: Vec<u32>,
    /// The end-of-thinking delimiter text, e.g. `</think>`.
    pub close_text: Vec<u8>,
    /// Tokens forced to end thinking: delimiter then a blank line, with and
    /// without a newline first (used when the thinking text lacks one).
    pub close_after_newline: Vec<u32>,
    pub close_on_new_line: Vec<u32>,
}

pub struct Control {
    plan: Plan,
    vocab: Arc<Vocab>,
    thinking: bool,
    /// Thinking tokens so far (the forced delimiter is not counted).
    count: Arc<AtomicU32>,
    waits: u32,
    queue: VecDeque<u32>,
    closing: bool,
    /// The last bytes of thinking text: enough to see the delimiter and an
    /// unfinished UTF-8 character.
    tail: Vec<u8>,
}

impl Control {
    pub fn new(plan: Plan, vocab: Arc<Vocab>) -> Self {
        Self {
            plan,
            vocab,
            thinking: true,
            count: Arc::new(AtomicU32::new(0)),
            waits: 0,
            queue: VecDeque::new(),
            closing: false,
            tail: Vec::new(),
        }
    }

    /// The thinking-token counter, for `usage`.
    pub fn counter(&self) -> Arc<AtomicU32> {
        self.count.clone()
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The token to emit, given the one sampling proposed.
    pub fn steer(&mut self, proposed: u32) -> u32 {
        let token = self.decide(proposed);
        self.emitted(token);
        token
    }

    fn decide(&mut self, proposed: u32) -> u32 {
        if let Some(t) = self.queue.pop_front() {
            return t;
        }
        if !self.thinking {
            return proposed;
        }
        if self.plan.max.is_some_and(|m| self.count() >= m) && utf8_complete(&self.tail) {
            return self.force_close();
        }
        let special = self.vocab.is_special(proposed);
        if special || self.would_close(proposed) {
            if self.count() < self.plan.min && self.waits < self.plan.max_waits {
                self.waits += 1;
                let after_space = self.tail.last().is_none_or(u8::is_ascii_whitespace);
                let wait = if after_space {
                    &self.plan.wait
                } else {
                    &self.plan.wait_after_text
                };
                self.queue.extend(wait.iter().copied());
                if let Some(t) = self.queue.pop_front() {
                    return t;
                }
            }
            // Ending the turn inside the thinking block would leave no
            // answer: close the block instead, and the answer follows.
            if special {
                return self.force_close();
            }
        }
        proposed
    }

    fn force_close(&mut self) -> u32 {
        self.closing = true;
        let on_new_line = self.tail.is_empty() || self.tail.ends_with(b"\n");
        let seq = if on_new_line {
            &self.plan.close_on_new_line
        } else {
            &self.plan.close_after_newline
        };
        self.queue.extend(seq.iter().copied());
        match self.queue.pop_front() {
            Some(t) => t,
            None => {
                self.thinking = false;
                0
            }
        }
    }

    /// Whether `token` ends thinking: it completes the delimiter, or it is
    /// the delimiter's start (`</`), which is how a model begins to close.
    fn would_close(&self, token: u32) -> bool {
        let bytes = self.vocab.bytes(token);
        let close = &self.plan.close_text;
        let mut joined = self.tail.clone();
        joined.extend_from_slice(bytes);
        if contains(&joined, close) {
            return true;
        }
        let trimmed = bytes.trim_ascii_start();
        trimmed.len() >= 2 && close.starts_with(trimmed)
    }

    fn emitted(&mut self, token: u32) {
        if !self.thinking {
            return;
        }
        if self.closing {
            if self.queue.is_empty() {
                self.thinking = false;
            }
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.tail.extend_from_slice(self.vocab.bytes(token));
        let keep = self.plan.close_text.len() + 8;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        if self.tail.ends_with(&self.plan.close_text) {
            self.thinking = false;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// False while the text ends inside a multi-byte UTF-8 character.
fn utf8_complete(text: &[u8]) -> bool {
    let Some(lead) = text.iter().rev().take(4).position(|b| b & 0xC0 != 0x80) else {
        return text.is_empty();
    };
    let start = text.len() - 1 - lead;
    let need = match text[start] {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        b if b >= 0xC0 => 2,
        _ => 1,
    };
    text.len() - start >= need
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens: 0 "<eos>" (special), 1 " a", 2 "</", 3 "think>", 4 "\n",
    /// 5 "Wait", 6 "\xC3" (half of "é"), 7 "\xA9", 8 "</think>".
    fn vocab() -> Arc<Vocab> {
        let t = |b: &[u8], special| (b.to_vec(), special);
        Arc::new(Vocab::for_tests(vec![
            t(b"<eos>", true),
            t(b" a", false),
            t(b"</", false),
            t(b"think>", false),
            t(b"\n", false),
            t(b"Wait", false),
            t(b"\xC3", false),
            t(b"\xA9", false),
            t(b"</think>", false),
        ]))
    }

    fn plan(max: Option<u32>, min: u32, max_waits: u32) -> Plan {
        Plan {
            max,
            min,
            max_waits,
            wait: vec![5],
            wait_after_text: vec![5],
            close_text: b"</think>".to_vec(),
            close_after_newline: vec![4, 8, 4, 4],
            close_on_new_line: vec![8, 4, 4],
        }
    }

    fn run(c: &mut Control, proposals: &[u32]) -> Vec<u32> {
        proposals.iter().map(|&p| c.steer(p)).collect()
    }

    #[test]
    fn max_forces_the_delimiter_after_exactly_n_tokens() {
        let mut c = Control::new(plan(Some(3), 0, 0), vocab());
        let out = run(&mut c, &[1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(out, vec![1, 1, 1, 4, 8, 4, 4, 1]);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn max_zero_is_an_empty_block() {
        let mut c = Control::new(plan(Some(0), 0, 0), vocab());
        assert_eq!(run(&mut c, &[1, 1, 1, 1]), vec![8, 4, 4, 1]);
        assert_eq!(c.count(), 0);
    }

    #[test]
    fn max_waits_for_the_character_to_finish() {
        let mut c = Control::new(plan(Some(2), 0, 0), vocab());
        assert_eq!(run(&mut c, &[1, 6, 7, 1]), vec![1, 6, 7, 4]);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn min_turns_early_ends_into_waits_at_most_k_times() {
        let mut c = Control::new(plan(None, 5, 2), vocab());
        // eos, "</", eos: two waits, then the third attempt closes the block.
        let out = run(&mut c, &[1, 0, 2, 0, 1, 1, 1, 1]);
        assert_eq!(out, vec![1, 5, 5, 4, 8, 4, 4, 1]);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn natural_close_after_min_is_kept() {
        let mut c = Control::new(plan(None, 1, 2), vocab());
        assert_eq!(run(&mut c, &[1, 2, 3, 0]), vec![1, 2, 3, 0]);
        assert!(!c.thinking);
    }

    #[test]
    fn utf8_completeness() {
        assert!(utf8_complete(b""));
        assert!(utf8_complete("aé".as_bytes()));
        assert!(!utf8_complete(b"a\xC3"));
        assert!(!utf8_complete(b"\xE2\x82"));
        assert!(utf8_complete("€".as_bytes()));
    }
}
