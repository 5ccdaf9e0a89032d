//! Splits streamed text into thinking (`reasoning_content`) and answer
//! (`content`) at the end-of-thinking delimiter. The text starts inside the
//! thinking block (the prompt opened it). Text that may still turn into the
//! delimiter, and whitespace that may be the block's last, is held back, so
//! both parts come out trimmed, as a non-streaming client gets them.

#[derive(Debug, Default, PartialEq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

pub struct ReasoningSplit {
    open: String,
    close: String,
    thinking: bool,
    held: String,
    /// Whether any reasoning / content text has been let out yet.
    reasoned: bool,
    answered: bool,
}

impl ReasoningSplit {
    pub fn new(open: &str, close: &str) -> Self {
        Self {
            open: open.to_string(),
            close: close.to_string(),
            thinking: true,
            held: String::new(),
            reasoned: false,
            answered: false,
        }
    }

    pub fn push(&mut self, text: &str) -> Split {
        if !self.thinking {
            return Split {
                reasoning: String::new(),
                content: self.answer(text),
            };
        }
        self.held.push_str(text);
        if !self.reasoned {
            // A model that opens the block itself repeats the delimiter.
            let trimmed = self.held.trim_start();
            let trimmed = trimmed.strip_prefix(self.open.as_str()).unwrap_or(trimmed);
            self.held = trimmed.trim_start().to_string();
        }
        if let Some(pos) = self.held.find(self.close.as_str()) {
            let after = self.held.split_off(pos);
            let reasoning = std::mem::take(&mut self.held).trim_end().to_string();
            self.thinking = false;
            return Split {
                reasoning,
                content: self.answer(&after[self.close.len()..]),
            };
        }
        let keep = self.open_tail_len();
        let ready = self.held.len() - keep;
        let reasoning: String = self.held.drain(..ready).collect();
        self.reasoned |= !reasoning.is_empty();
        Split {
            reasoning,
            content: String::new(),
        }
    }

    /// Lets out what is held when the text ends.
    pub fn finish(&mut self) -> Split {
        let reasoning = std::mem::take(&mut self.held).trim_end().to_string();
        Split {
            reasoning: if self.thinking {
                reasoning
            } else {
                String::new()
            },
            content: String::new(),
        }
    }

    fn answer(&mut self, text: &str) -> String {
        let text = if self.answered {
            text
        } else {
            text.trim_start()
        };
        self.answered |= !text.is_empty();
        text.to_string()
    }

    /// Bytes at the end of `held` to keep back: trailing whitespace plus a
    /// tail that starts the delimiter.
    fn open_tail_len(&self) -> usize {
        let h = &self.held;
        let partial = (1..self.close.len().min(h.len() + 1))
            .rev()
            .find(|&n| h.is_char_boundary(h.len() - n) && self.close.starts_with(&h[h.len() - n..]))
            .unwrap_or(0);
        let body = &h[..h.len() - partial];
        partial + (body.len() - body.trim_end().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(pieces: &[&str]) -> (String, String) {
        let mut s = ReasoningSplit::new("<think>", "</think>");
        let (mut r, mut c) = (String::new(), String::new());
        for p in pieces {
            let out = s.push(p);
            r.push_str(&out.reasoning);
            c.push_str(&out.content);
        }
        let out = s.finish();
        r.push_str(&out.reasoning);
        c.push_str(&out.content);
        (r, c)
    }

    #[test]
    fn splits_at_the_delimiter_in_any_pieces() {
        let want = ("I think. So.".to_string(), "Answer here.".to_string());
        assert_eq!(split_all(&["I think. So.\n</think>\n\nAnswer here."]), want);
        assert_eq!(
            split_all(&[
                "I", " think.", " So.", "\n", "</", "think", ">", "\n\n", "Answer", " here."
            ]),
            want
        );
    }

    #[test]
    fn empty_block_and_unclosed_block() {
        assert_eq!(
            split_all(&["</think>\n\n", "Hi"]),
            (String::new(), "Hi".into())
        );
        assert_eq!(
            split_all(&["still thinking <", "/thi"]),
            ("still thinking </thi".into(), String::new())
        );
    }

    #[test]
    fn a_repeated_open_delimiter_is_dropped() {
        assert_eq!(
            split_all(&["<think>\nhm</think>ok"]),
            ("hm".into(), "ok".into())
        );
    }

    #[test]
    fn inner_whitespace_is_kept_once_text_follows() {
        let mut s = ReasoningSplit::new("<think>", "</think>");
        assert_eq!(s.push("a \n").reasoning, "a");
        assert_eq!(s.push("b").reasoning, " \nb");
    }
}
