//! Sees where a streamed JSON object or array ends, so that structured
//! output finishes with its value instead of running to `max_tokens`.

#[derive(Debug, Default)]
pub struct JsonEnd {
    depth: u32,
    started: bool,
    in_string: bool,
    escaped: bool,
    done: bool,
}

impl JsonEnd {
    /// Feeds text; returns the byte length of `text` up to and including
    /// the character that closes the top-level value, once it has.
    pub fn push(&mut self, text: &str) -> Option<usize> {
        if self.done {
            return Some(0);
        }
        for (i, c) in text.char_indices() {
            if self.in_string {
                match c {
                    _ if self.escaped => self.escaped = false,
                    '\\' => self.escaped = true,
                    '"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                '{' | '[' => {
                    self.started = true;
                    self.depth += 1;
                }
                '}' | ']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 && self.started {
                        self.done = true;
                        return Some(i + c.len_utf8());
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_the_closing_brace_not_inside_strings() {
        let mut j = JsonEnd::default();
        assert_eq!(j.push("{\"a\": \"}\\\"]\", "), None);
        assert_eq!(j.push("\"b\": [1, {\"c\": 2}]"), None);
        assert_eq!(j.push("}\n\n"), Some(1));
    }

    #[test]
    fn a_bare_scalar_never_ends_early() {
        let mut j = JsonEnd::default();
        assert_eq!(j.push("12"), None);
    }
}
