//! Folds streamed chunks into the single response object a non-streaming
//! client gets. Generation is always streamed internally, so this is the one
//! place where the two response shapes are reconciled.

use std::collections::BTreeMap;

use crate::chat::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, FunctionCall, ToolCall,
    ToolKind,
};
use crate::common::{Logprobs, Usage};
use crate::completions::{Completion, CompletionChoice, CompletionLogprobs};

#[derive(Default)]
struct ChoiceAcc {
    content: Option<String>,
    reasoning: Option<String>,
    tool_calls: BTreeMap<u32, ToolCall>,
    logprobs: Option<Logprobs>,
    finish_reason: Option<String>,
}

/// Builds a `chat.completion` from `chat.completion.chunk`s.
#[derive(Default)]
pub struct ChatAccumulator {
    head: Option<ChatCompletionChunk>,
    choices: BTreeMap<u32, ChoiceAcc>,
    usage: Option<Usage>,
}

fn append(slot: &mut Option<String>, text: &str) {
    slot.get_or_insert_with(String::new).push_str(text);
}

impl ChatAccumulator {
    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        if self.head.is_none() {
            self.head = Some(ChatCompletionChunk {
                choices: Vec::new(),
                usage: None,
                ..chunk.clone()
            });
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if let (Some(head), Some(ext)) = (&mut self.head, &chunk.ferrite) {
            head.ferrite
                .get_or_insert_with(Default::default)
                .merge(ext.clone());
        }
        for c in &chunk.choices {
            let acc = self.choices.entry(c.index).or_default();
            if let Some(t) = &c.delta.content {
                append(&mut acc.content, t);
            }
            if let Some(t) = &c.delta.reasoning_content {
                append(&mut acc.reasoning, t);
            }
            for tc in c.delta.tool_calls.iter().flatten() {
                let call = acc.tool_calls.entry(tc.index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    kind: ToolKind::Function,
                    function: FunctionCall {
                        name: String::new(),
                        arguments: String::new(),
                    },
                });
                if let Some(id) = &tc.id {
                    call.id.clone_from(id);
                }
                if let Some(f) = &tc.function {
                    if let Some(name) = &f.name {
                        call.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.function.arguments.push_str(args);
                    }
                }
            }
            if let Some(lp) = &c.logprobs {
                let dst = acc.logprobs.get_or_insert_with(Logprobs::default);
                dst.content
                    .get_or_insert_with(Vec::new)
                    .extend(lp.content.iter().flatten().cloned());
            }
            if c.finish_reason.is_some() {
                acc.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    pub fn finish(self) -> ChatCompletion {
        let head = self.head.unwrap_or_else(|| ChatCompletionChunk {
            id: String::new(),
            object: String::new(),
            created: 0,
            model: String::new(),
            system_fingerprint: None,
            choices: Vec::new(),
            usage: None,
            ferrite: None,
            comment: None,
        });
        let choices = self
            .choices
            .into_iter()
            .map(|(index, acc)| {
                let tool_calls: Vec<ToolCall> = acc.tool_calls.into_values().collect();
                let content = match acc.content {
                    None if tool_calls.is_empty() => Some(String::new()),
                    c => c,
                };
                ChatChoice {
                    index,
                    message: AssistantMessage {
                        role: "assistant".into(),
                        content,
                        reasoning_content: acc.reasoning,
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                    },
                    logprobs: acc.logprobs,
                    finish_reason: acc.finish_reason,
                }
            })
            .collect();
        ChatCompletion {
            id: head.id,
            object: "chat.completion".into(),
            created: head.created,
            model: head.model,
            choices,
            usage: self.usage,
            system_fingerprint: head.system_fingerprint,
            ferrite: head.ferrite,
        }
    }
}

/// Builds a `text_completion` from its streamed chunks.
#[derive(Default)]
pub struct CompletionAccumulator {
    head: Option<Completion>,
    choices: BTreeMap<u32, CompletionChoice>,
    usage: Option<Usage>,
}

impl CompletionAccumulator {
    pub fn push(&mut self, chunk: &Completion) {
        if self.head.is_none() {
            self.head = Some(Completion {
                choices: Vec::new(),
                usage: None,
                ..chunk.clone()
            });
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for c in &chunk.choices {
            let acc = self
                .choices
                .entry(c.index)
                .or_insert_with(|| CompletionChoice {
                    index: c.index,
                    text: String::new(),
                    logprobs: None,
                    finish_reason: None,
                });
            acc.text.push_str(&c.text);
            if let Some(lp) = &c.logprobs {
                acc.logprobs
                    .get_or_insert_with(CompletionLogprobs::default)
                    .extend(lp.clone());
            }
            if c.finish_reason.is_some() {
                acc.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    pub fn finish(self) -> Completion {
        let mut out = self.head.unwrap_or_else(|| Completion {
            id: String::new(),
            object: String::new(),
            created: 0,
            model: String::new(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
        });
        out.object = "text_completion".into();
        out.choices = self.choices.into_values().collect();
        out.usage = self.usage;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};

    fn chunk(choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: None,
            choices,
            usage,
            ferrite: None,
            comment: None,
        }
    }

    fn delta(index: u32, content: Option<&str>, finish: Option<&str>) -> ChunkChoice {
        ChunkChoice {
            index,
            delta: Delta {
                content: content.map(String::from),
                ..Delta::default()
            },
            logprobs: None,
            finish_reason: finish.map(String::from),
        }
    }

    #[test]
    fn folds_text_choices_and_usage() {
        let mut acc = ChatAccumulator::default();
        acc.push(&chunk(
            vec![delta(0, Some(""), None), delta(1, Some("B"), None)],
            None,
        ));
        acc.push(&chunk(vec![delta(0, Some("Hel"), None)], None));
        acc.push(&chunk(vec![delta(0, Some("lo"), Some("stop"))], None));
        acc.push(&chunk(vec![delta(1, None, Some("length"))], None));
        acc.push(&chunk(vec![], Some(Usage::new(3, 4))));
        let out = acc.finish();
        assert_eq!(out.object, "chat.completion");
        assert_eq!(out.id, "chatcmpl-1");
        assert_eq!(out.choices[0].message.content.as_deref(), Some("Hello"));
        assert_eq!(out.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(out.choices[1].message.content.as_deref(), Some("B"));
        assert_eq!(out.usage, Some(Usage::new(3, 4)));
    }

    #[test]
    fn joins_tool_call_fragments() {
        let tc = |id: Option<&str>, name: Option<&str>, args: &str| ChunkChoice {
            index: 0,
            delta: Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: 0,
                    id: id.map(String::from),
                    kind: None,
                    function: Some(FunctionCallDelta {
                        name: name.map(String::from),
                        arguments: Some(args.into()),
                    }),
                }]),
                ..Delta::default()
            },
            logprobs: None,
            finish_reason: None,
        };
        let mut acc = ChatAccumulator::default();
        acc.push(&chunk(vec![tc(Some("call-1"), Some("f"), "{\"a\":")], None));
        acc.push(&chunk(vec![tc(None, None, "1}")], None));
        let out = acc.finish();
        let calls = out.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id, "call-1");
        assert_eq!(calls[0].function.arguments, "{\"a\":1}");
        assert_eq!(out.choices[0].message.content, None);
    }
}
