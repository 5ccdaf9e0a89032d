//! Stop sequences, matched on the decoded text as it streams.
//!
//! mistral.rs 0.8.1 notices a stop string one token late and leaks it into
//! the output, so ferrite matches stops itself: text that could still turn
//! into a stop sequence is held back, and a match cuts the text right there.

use std::collections::VecDeque;

/// What a push lets through: text, the logprobs of the tokens that text
/// completes, and whether a stop sequence ended the choice.
pub struct Release<L> {
    pub text: String,
    pub logprobs: Vec<L>,
    pub stopped: bool,
}

pub struct StopGate<L> {
    stops: Vec<String>,
    held: String,
    /// Per held token: the byte offset in `held` where its text ends.
    tokens: VecDeque<(usize, L)>,
}

impl<L> StopGate<L> {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            tokens: VecDeque::new(),
        }
    }

    pub fn push(&mut self, text: &str, logprob: Option<L>) -> Release<L> {
        self.held.push_str(text);
        if let Some(lp) = logprob {
            self.tokens.push_back((self.held.len(), lp));
        }
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(pos) = first_match {
            // Tokens that end inside the stop sequence are not part of the answer.
            return self.release(pos, true);
        }
        let keep = self.open_prefix_len();
        self.release(self.held.len() - keep, false)
    }

    /// Lets out everything still held (the choice ended without a match).
    pub fn finish(&mut self) -> Release<L> {
        self.release(self.held.len(), false)
    }

    /// Length of the longest tail of `held` that starts some stop sequence.
    fn open_prefix_len(&self) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        (1..longest.min(self.held.len() + 1))
            .rev()
            .find(|&n| {
                let start = self.held.len() - n;
                self.held.is_char_boundary(start)
                    && self
                        .stops
                        .iter()
                        .any(|s| s.starts_with(&self.held[start..]))
            })
            .unwrap_or(0)
    }

    fn release(&mut self, upto: usize, stopped: bool) -> Release<L> {
        let text: String = self.held.drain(..upto).collect();
        let mut logprobs = Vec::new();
        while self.tokens.front().is_some_and(|(end, _)| *end <= upto) {
            if let Some((_, lp)) = self.tokens.pop_front() {
                logprobs.push(lp);
            }
        }
        for (end, _) in self.tokens.iter_mut() {
            *end -= upto.min(*end);
        }
        if stopped {
            self.held.clear();
            self.tokens.clear();
        }
        Release {
            text,
            logprobs,
            stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut gate: StopGate<()> = StopGate::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let r = gate.push(p, None);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&gate.finish().text);
        (out, false)
    }

    #[test]
    fn cuts_at_a_stop_split_across_tokens() {
        assert_eq!(run(&["\n\n"], &["a", "b\n", "\nc"]), ("ab".into(), true));
        assert_eq!(
            run(&[" creative"], &[" any", " cre", "ative", " x"]),
            (" any".into(), true)
        );
    }

    #[test]
    fn holds_only_what_could_still_match() {
        let mut gate: StopGate<()> = StopGate::new(vec!["END".into()]);
        assert_eq!(gate.push("abcE", None).text, "abc");
        assert_eq!(gate.push("x", None).text, "Ex");
        assert_eq!(run(&["END"], &["abE", "N"]), ("abEN".into(), false));
    }

    #[test]
    fn releases_logprobs_with_their_text() {
        let mut gate = StopGate::new(vec!["stop".into()]);
        let r = gate.push("go ", Some(1));
        assert_eq!((r.text.as_str(), r.logprobs), ("go ", vec![1]));
        let r = gate.push("st", Some(2));
        assert!(r.logprobs.is_empty());
        let r = gate.push("op", Some(3));
        assert!(r.stopped && r.text.is_empty() && r.logprobs.is_empty());
    }

    #[test]
    fn no_stops_passes_everything() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }
}
