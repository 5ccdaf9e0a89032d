//! Range and consistency checks on requests, before anything reaches an engine.
//! Limits follow OpenAI's documented ranges so clients see the errors they expect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chat::{
    ChatRequest, ContentPart, MessageContent, ResponseFormat, Role, ToolChoice, ToolChoiceMode,
};
use crate::common::StopSequences;
use crate::completions::{CompletionRequest, Prompt};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The most completions one request may ask for (`n`, `best_of`).
pub const MAX_CHOICES: u32 = 16;
const MAX_STOP_SEQUENCES: usize = 16;
/// A stop sequence is matched against every token's text as it streams:
/// its cost per token grows with the square of its length.
const MAX_STOP_BYTES: usize = 1024;
const MAX_TOP_LOGPROBS: u32 = 20;

/// Bounds on the shape of one request, so that no single request, however
/// small its body, can take the server's memory or its engine for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// Prompts in one text completion request (`prompt` as a list).
    pub max_prompts: usize,
    /// Sequences one request may start: prompts × `n` (or `best_of`).
    pub max_sequences: usize,
    /// Messages in one chat (`messages`, Responses' `input`, an SDK
    /// history): each costs template and tokenizer work.
    pub max_messages: usize,
    /// Content parts (or blocks) over all of a chat's messages.
    pub max_content_parts: usize,
    /// Tool definitions in one request.
    pub max_tools: usize,
    /// Tool calls over all of a chat's messages.
    pub max_tool_calls: usize,
    /// Bytes of text one call tokenizes whole: `/tokenize`, token counts,
    /// and a conversation read past the context (truncation, MemAgent).
    /// llama.cpp's tokenizer takes about a second a MiB, more for one
    /// endless word; 2 MiB is half a million tokens of prose.
    pub max_tokenize_bytes: usize,
    /// Images in one chat.
    pub max_images: usize,
    /// Bytes of one image file (PNG, JPEG, WebP, GIF) as sent.
    pub max_image_bytes: usize,
    /// Pixels of one decoded image (each is held as RGB until encoded).
    pub max_image_pixels: u64,
}

/// The limits an engine checks when it decodes an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_image_bytes: usize,
    pub max_image_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        RequestLimits::default().images()
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_prompts: 64,
            max_sequences: 64,
            max_messages: 4096,
            max_content_parts: 4096,
            max_tools: 256,
            max_tool_calls: 1024,
            max_tokenize_bytes: 2 << 20,
            max_images: 16,
            max_image_bytes: 10 << 20,
            max_image_pixels: 4096 * 4096,
        }
    }
}

impl RequestLimits {
    pub fn images(&self) -> ImageLimits {
        ImageLimits {
            max_image_bytes: self.max_image_bytes,
            max_image_pixels: self.max_image_pixels,
        }
    }
}

/// How many of each countable thing one request holds, whatever API it
/// came through, and the names that API gives them (for the 400).
#[derive(Debug, Default, Clone, Copy)]
pub struct Shape {
    pub messages: usize,
    pub content_parts: usize,
    pub tools: usize,
    pub tool_calls: usize,
    pub images: usize,
}

/// An API's field names for the parts of [`Shape`].
#[derive(Debug, Clone, Copy)]
pub struct ShapeNames {
    pub messages: &'static str,
    pub content_parts: &'static str,
    pub tools: &'static str,
    pub tool_calls: &'static str,
    pub images: &'static str,
}

impl ShapeNames {
    /// OpenAI's chat completions (and everything converted into one).
    pub const CHAT: ShapeNames = ShapeNames {
        messages: "messages",
        content_parts: "messages[].content",
        tools: "tools",
        tool_calls: "messages[].tool_calls",
        images: "messages[].content[].image_url",
    };
}

impl Shape {
    /// Counts as it goes, saturating: a count only has to pass the limit.
    pub fn of_chat(messages: &[crate::chat::ChatMessage], tools: usize) -> Shape {
        let mut shape = Shape {
            messages: messages.len(),
            tools,
            ..Shape::default()
        };
        for m in messages {
            if let Some(MessageContent::Parts(parts)) = &m.content {
                shape.content_parts = shape.content_parts.saturating_add(parts.len());
                let images = parts
                    .iter()
                    .filter(|p| matches!(p, ContentPart::ImageUrl { .. }))
                    .count();
                shape.images = shape.images.saturating_add(images);
            }
            let calls = m.tool_calls.as_ref().map_or(0, Vec::len);
            shape.tool_calls = shape.tool_calls.saturating_add(calls);
        }
        shape
    }
}

/// Sampling fields common to chat and text completions.
struct Sampling<'a> {
    temperature: Option<f64>,
    top_p: Option<f64>,
    min_p: Option<f64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    repeat_penalty: Option<f32>,
    stop: Option<&'a StopSequences>,
    logit_bias: Option<&'a BTreeMap<String, f32>>,
    n: Option<u32>,
}

fn in_range(param: &str, value: Option<f64>, lo: f64, hi: f64) -> ApiResult<()> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be between {lo} and {hi}, got {v}."),
        )
        .with_code(ErrorCode::InvalidValue)),
        _ => Ok(()),
    }
}

fn check_sampling(s: &Sampling) -> ApiResult<()> {
    in_range("temperature", s.temperature, 0.0, 2.0)?;
    in_range("top_p", s.top_p, 0.0, 1.0)?;
    if s.top_p == Some(0.0) {
        return Err(ApiError::invalid(
            "top_p",
            "`top_p` must be greater than 0.",
        ));
    }
    in_range("min_p", s.min_p, 0.0, 1.0)?;
    in_range(
        "presence_penalty",
        s.presence_penalty.map(f64::from),
        -2.0,
        2.0,
    )?;
    in_range(
        "frequency_penalty",
        s.frequency_penalty.map(f64::from),
        -2.0,
        2.0,
    )?;
    in_range("repeat_penalty", s.repeat_penalty.map(f64::from), 0.0, 10.0)?;
    if s.repeat_penalty == Some(0.0) {
        return Err(ApiError::invalid(
            "repeat_penalty",
            "`repeat_penalty` must be greater than 0 (1 disables it).",
        ));
    }
    if let Some(n) = s.n {
        if n == 0 || n > MAX_CHOICES {
            return Err(ApiError::invalid(
                "n",
                format!("`n` must be between 1 and {MAX_CHOICES}, got {n}."),
            ));
        }
    }
    if let Some(stop) = s.stop {
        let stops = stop.to_vec();
        if stops.len() > MAX_STOP_SEQUENCES {
            return Err(ApiError::invalid(
                "stop",
                format!("At most {MAX_STOP_SEQUENCES} stop sequences are allowed."),
            ));
        }
        if stops.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop",
                "Stop sequences must not be empty.",
            ));
        }
        if stops.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::invalid(
                "stop",
                format!("Stop sequences must be at most {MAX_STOP_BYTES} bytes long."),
            ));
        }
    }
    if let Some(bias) = s.logit_bias {
        for (token, value) in bias {
            if token.parse::<u32>().is_err() {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("`logit_bias` keys must be token ids, got `{token}`."),
                ));
            }
            if !(-100.0..=100.0).contains(value) {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("`logit_bias` values must be between -100 and 100, got {value}."),
                ));
            }
        }
    }
    Ok(())
}

/// `max_tokens`: `None`/`-1` mean no limit beyond the context; else at least 1.
pub fn token_limit(param: &str, value: Option<i64>) -> ApiResult<Option<u32>> {
    match value {
        None | Some(-1) => Ok(None),
        Some(v) if v >= 1 => Ok(Some(u32::try_from(v).unwrap_or(u32::MAX))),
        Some(v) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be at least 1 (or -1 for no limit), got {v}."),
        )
        .with_code(ErrorCode::InvalidValue)),
    }
}

fn refuse<T>(param: &str, value: &Option<T>, why: &str) -> ApiResult<()> {
    match value {
        Some(_) => Err(ApiError::unsupported(param, why)),
        None => Ok(()),
    }
}

impl ChatRequest {
    /// The effective completion limit: `max_completion_tokens` wins over `max_tokens`.
    pub fn completion_limit(&self) -> ApiResult<Option<u32>> {
        match self.max_completion_tokens {
            Some(_) => token_limit("max_completion_tokens", self.max_completion_tokens),
            None => token_limit("max_tokens", self.max_tokens),
        }
    }

    pub fn validate(&self) -> ApiResult<()> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must contain at least one message.",
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            validate_message(i, m)?;
        }
        check_sampling(&Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            min_p: self.min_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repeat_penalty: self.repeat_penalty,
            stop: self.stop.as_ref(),
            logit_bias: self.logit_bias.as_ref(),
            n: self.n,
        })?;
        self.completion_limit()?;
        if let Some(k) = self.top_logprobs {
            if k > MAX_TOP_LOGPROBS {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    format!("`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}."),
                ));
            }
            if self.logprobs != Some(true) {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "`top_logprobs` requires `logprobs` to be true.",
                ));
            }
        }
        self.validate_tools()?;
        self.validate_thinking()?;
        self.validate_continue()?;
        crate::adapters::validate(self.adapters.as_deref())?;
        if let Some(ResponseFormat::JsonSchema { json_schema }) = &self.response_format {
            if !json_schema.schema.as_ref().is_some_and(|s| s.is_object()) {
                return Err(ApiError::invalid(
                    "response_format.json_schema.schema",
                    "`json_schema.schema` must be a JSON Schema object.",
                ));
            }
        }
        self.refuse_unsupported()
    }

    fn validate_continue(&self) -> ApiResult<()> {
        if self.continue_final_message != Some(true) {
            return Ok(());
        }
        let bad = |msg: &str| Err(ApiError::invalid("continue_final_message", msg));
        let Some(last) = self.messages.last() else {
            return Ok(());
        };
        if last.role != crate::chat::Role::Assistant || last.tool_calls.is_some() {
            return bad(
                "`continue_final_message` needs the last message to be the assistant's text.",
            );
        }
        if self.thinking.as_ref().is_some_and(|t| t.thinks()) {
            return bad("A continued answer cannot open a thinking block: turn thinking off.");
        }
        Ok(())
    }

    fn validate_thinking(&self) -> ApiResult<()> {
        let Some(t) = &self.thinking else {
            return Ok(());
        };
        t.validate()?;
        if t.thinks() && self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::unsupported(
                "thinking",
                "Thinking budgets cannot be combined with `tools` yet.",
            ));
        }
        if t.thinks() && !matches!(self.response_format, None | Some(ResponseFormat::Text)) {
            return Err(ApiError::unsupported(
                "thinking",
                "Thinking budgets cannot be combined with a structured `response_format`.",
            ));
        }
        if t.rounds() > 1 && self.n.unwrap_or(1) > 1 {
            return Err(ApiError::unsupported(
                "thinking.rounds",
                "Multi-round thinking answers one choice: `n` must be 1.",
            ));
        }
        Ok(())
    }

    fn validate_tools(&self) -> ApiResult<()> {
        let tools = self.tools.as_deref().unwrap_or_default();
        for (i, t) in tools.iter().enumerate() {
            let name = &t.function.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::invalid(
                    &format!("tools[{i}].function.name"),
                    "Function names must be 1-64 characters of a-z, A-Z, 0-9, `_` or `-`.",
                ));
            }
            if let Some(p) = &t.function.parameters {
                if !p.is_object() {
                    return Err(ApiError::invalid(
                        &format!("tools[{i}].function.parameters"),
                        "`parameters` must be a JSON Schema object.",
                    ));
                }
            }
        }
        match &self.tool_choice {
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) if tools.is_empty() => {
                Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` is `required` but no `tools` were given.",
                ))
            }
            Some(ToolChoice::Named(named))
                if !tools.iter().any(|t| t.function.name == named.function.name) =>
            {
                Err(ApiError::invalid(
                    "tool_choice",
                    format!(
                        "`tool_choice` names `{}`, which is not in `tools`.",
                        named.function.name
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn refuse_unsupported(&self) -> ApiResult<()> {
        refuse("audio", &self.audio, "Audio output is not supported.")?;
        if let Some(m) = &self.modalities {
            if m.iter().any(|x| x != "text") {
                return Err(ApiError::unsupported(
                    "modalities",
                    "Only the `text` modality is supported.",
                ));
            }
        }
        refuse(
            "prediction",
            &self.prediction,
            "Predicted outputs are not supported.",
        )?;
        refuse(
            "web_search_options",
            &self.web_search_options,
            "Web search is not supported.",
        )?;
        refuse(
            "functions",
            &self.functions,
            "`functions` is deprecated and not supported; use `tools`.",
        )?;
        refuse(
            "function_call",
            &self.function_call,
            "`function_call` is deprecated and not supported; use `tool_choice`.",
        )?;
        refuse(
            "draft_model",
            &self.draft_model,
            "Speculative decoding with a draft model is not supported.",
        )?;
        if self.store == Some(true) {
            return Err(ApiError::unsupported(
                "store",
                "Stored completions are not supported.",
            ));
        }
        Ok(())
    }
}

fn validate_message(i: usize, m: &crate::chat::ChatMessage) -> ApiResult<()> {
    let param = format!("messages[{i}].content");
    match &m.content {
        None if m.role == Role::Assistant && m.tool_calls.is_some() => {}
        None => {
            return Err(ApiError::invalid(
                &param,
                format!("A `{}` message needs `content`.", m.role.template_name()),
            ))
        }
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text { .. } => {}
                    ContentPart::Refusal { .. } if m.role == Role::Assistant => {}
                    ContentPart::ImageUrl { image_url } if m.role == Role::User => {
                        if crate::chat::image_url_of(image_url).is_none() {
                            return Err(ApiError::invalid(
                                &format!("{param}[{j}].image_url"),
                                "`image_url` must be an object with a string `url`.",
                            ));
                        }
                    }
                    ContentPart::ImageUrl { .. } => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{j}]"),
                            "Images go in `user` messages.",
                        ))
                    }
                    _ => {
                        return Err(ApiError::unsupported(
                            &format!("{param}[{j}]"),
                            "Only text and image parts are supported.",
                        ))
                    }
                }
            }
        }
    }
    if m.role == Role::Tool && m.tool_call_id.is_none() {
        return Err(ApiError::invalid(
            &format!("messages[{i}].tool_call_id"),
            "A `tool` message needs `tool_call_id`.",
        ));
    }
    if m.tool_calls.is_some() && m.role != Role::Assistant {
        return Err(ApiError::invalid(
            &format!("messages[{i}].tool_calls"),
            "Only `assistant` messages can carry `tool_calls`.",
        ));
    }
    Ok(())
}

impl RequestLimits {
    /// 400 naming `param` when a request would start more completions than
    /// `max_sequences`; `how` says how they add up.
    fn check_sequences(&self, param: &str, sequences: usize, how: &str) -> ApiResult<()> {
        if sequences <= self.max_sequences {
            return Ok(());
        }
        Err(ApiError::invalid(
            param,
            format!(
                "{how} = {sequences} completions; this server runs at most {} per request.",
                self.max_sequences
            ),
        )
        .with_code(ErrorCode::TooManyCompletions))
    }
}

impl RequestLimits {
    /// 400 naming the field (in the API's own words) of which a request
    /// holds more than this server takes: checked before any work.
    pub fn check_shape(&self, shape: &Shape, names: &ShapeNames) -> ApiResult<()> {
        let checks = [
            (
                shape.messages,
                self.max_messages,
                names.messages,
                "messages",
                "max_messages",
            ),
            (
                shape.content_parts,
                self.max_content_parts,
                names.content_parts,
                "content parts",
                "max_content_parts",
            ),
            (
                shape.tools,
                self.max_tools,
                names.tools,
                "tool definitions",
                "max_tools",
            ),
            (
                shape.tool_calls,
                self.max_tool_calls,
                names.tool_calls,
                "tool calls",
                "max_tool_calls",
            ),
            (
                shape.images,
                self.max_images,
                names.images,
                "images",
                "max_images",
            ),
        ];
        for (count, max, param, what, key) in checks {
            if count > max {
                return Err(ApiError::invalid(
                    param,
                    format!(
                        "The request holds {count} {what} (`{param}`); this server takes at most {max} per request (`limits.{key}`)."
                    ),
                )
                .with_code(ErrorCode::RequestTooLarge));
            }
        }
        Ok(())
    }
}

impl RequestLimits {
    /// 400 naming `param` when `text` is longer than one call tokenizes.
    pub fn check_tokenize(&self, param: &str, bytes: usize) -> ApiResult<()> {
        if bytes <= self.max_tokenize_bytes {
            return Ok(());
        }
        Err(ApiError::invalid(
            param,
            format!(
                "The text is {bytes} bytes; this server tokenizes at most {} bytes in one call.",
                self.max_tokenize_bytes
            ),
        )
        .with_code(ErrorCode::RequestTooLarge))
    }
}

impl ChatRequest {
    /// 400 naming the field when the request is past the server's limits:
    /// its shape, and `n` when it asks for more completions than the
    /// server runs.
    pub fn check_limits(&self, limits: &RequestLimits) -> ApiResult<()> {
        let tools = self.tools.as_ref().map_or(0, Vec::len);
        limits.check_shape(&Shape::of_chat(&self.messages, tools), &ShapeNames::CHAT)?;
        limits.check_sequences("n", self.n.unwrap_or(1) as usize, "`n`")
    }
}

impl CompletionRequest {
    /// 400 naming the field when the request is past the server's limits.
    pub fn check_limits(&self, limits: &RequestLimits) -> ApiResult<()> {
        let prompts = self.prompt.count();
        if prompts > limits.max_prompts {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                    "`prompt` holds {prompts} prompts; this server takes at most {} per request.",
                    limits.max_prompts
                ),
            )
            .with_code(ErrorCode::TooManyPrompts));
        }
        let (param, per_prompt) = match self.best_of {
            Some(b) if b > self.n.unwrap_or(1) => ("best_of", b),
            _ => ("n", self.n.unwrap_or(1)),
        };
        let sequences = prompts.saturating_mul(per_prompt as usize);
        limits.check_sequences(
            param,
            sequences,
            &format!("{prompts} prompts × `{param}` {per_prompt}"),
        )
    }

    /// OpenAI's default for text completions is 16 tokens.
    pub fn completion_limit(&self) -> ApiResult<Option<u32>> {
        match self.max_tokens {
            None => Ok(Some(16)),
            v => token_limit("max_tokens", v),
        }
    }

    pub fn validate(&self) -> ApiResult<()> {
        let empty = match &self.prompt {
            Prompt::Texts(v) => v.is_empty(),
            Prompt::Tokens(v) => v.is_empty(),
            Prompt::TokenLists(v) => v.is_empty() || v.iter().any(Vec::is_empty),
            Prompt::Text(_) => false,
        };
        if empty {
            return Err(ApiError::invalid("prompt", "`prompt` must not be empty."));
        }
        check_sampling(&Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            min_p: self.min_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repeat_penalty: self.repeat_penalty,
            stop: self.stop.as_ref(),
            logit_bias: self.logit_bias.as_ref(),
            n: self.n,
        })?;
        crate::adapters::validate(self.adapters.as_deref())?;
        self.completion_limit()?;
        if let Some(k) = self.logprobs {
            if k > 5 {
                return Err(ApiError::invalid(
                    "logprobs",
                    "`logprobs` must be between 0 and 5.",
                ));
            }
        }
        if let Some(b) = self.best_of {
            let n = self.n.unwrap_or(1);
            if b < n || b > MAX_CHOICES {
                return Err(ApiError::invalid(
                    "best_of",
                    format!("`best_of` must be between `n` ({n}) and {MAX_CHOICES}."),
                ));
            }
            if b > 1 && self.is_stream() {
                return Err(ApiError::invalid(
                    "best_of",
                    "`best_of` cannot be used with `stream`.",
                ));
            }
        }
        refuse(
            "suffix",
            &self.suffix,
            "`suffix` (fill-in-the-middle) is not supported.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_json;

    fn chat(body: &str) -> ApiResult<()> {
        parse_json::<ChatRequest>(body.as_bytes())?.validate()
    }

    #[test]
    fn request_shape_limits_name_the_param() {
        let limits = RequestLimits {
            max_prompts: 3,
            max_sequences: 4,
            max_messages: 3,
            max_content_parts: 2,
            max_tools: 1,
            max_tool_calls: 1,
            max_tokenize_bytes: 8,
            max_images: 1,
            ..RequestLimits::default()
        };
        let completion = |body: &str| {
            parse_json::<CompletionRequest>(body.as_bytes())
                .unwrap()
                .check_limits(&limits)
        };
        assert!(completion(r#"{"prompt": ["a", "b"], "n": 2}"#).is_ok());
        let e = completion(r#"{"prompt": ["a", "b", "c", "d"]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = completion(r#"{"prompt": [[1], [2], [3]], "n": 2}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = completion(r#"{"prompt": "a", "n": 1, "best_of": 5}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("best_of"));
        let chat = parse_json::<ChatRequest>(
            br#"{"messages": [{"role": "user", "content": "x"}], "n": 5}"#,
        );
        let e = chat.unwrap().check_limits(&limits).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let chat = |body: &str| {
            parse_json::<ChatRequest>(body.as_bytes())
                .unwrap()
                .check_limits(&limits)
        };
        let user = r#"{"role": "user", "content": "x"}"#;
        assert!(chat(&format!(r#"{{"messages": [{user}, {user}, {user}]}}"#)).is_ok());
        let e = chat(&format!(
            r#"{{"messages": [{user}, {user}, {user}, {user}]}}"#
        ));
        let e = e.unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("messages")));
        let parts = r#"{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}"#;
        let e = chat(&format!(r#"{{"messages": [{parts}, {parts}]}}"#)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[].content"));
        let tool = r#"{"type": "function", "function": {"name": "f"}}"#;
        let e = chat(&format!(
            r#"{{"messages": [{user}], "tools": [{tool}, {tool}]}}"#
        ));
        assert_eq!(e.unwrap_err().param.as_deref(), Some("tools"));
        let call =
            r#"{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}"#;
        let calls = format!(r#"{{"role": "assistant", "tool_calls": [{call}, {call}]}}"#);
        let e = chat(&format!(r#"{{"messages": [{user}, {calls}]}}"#)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[].tool_calls"));
        let image = r#"{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}"#;
        let e = chat(&format!(r#"{{"messages": [{image}, {image}]}}"#)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[].content[].image_url"));
        assert!(e.message.contains("limits.max_images"), "{}", e.message);
    }

    #[test]
    fn accepts_a_plain_request() {
        chat(r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":-1}"#).unwrap();
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let cases = [
            (r#"{"messages":[]}"#, "messages"),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":9}"#,
                "temperature",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"n":1000}"#,
                "n",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"logit_bias":{"a":1}}"#,
                "logit_bias",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"top_logprobs":3}"#,
                "top_logprobs",
            ),
            (r#"{"messages":[{"role":"user"}]}"#, "messages[0].content"),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"uri":"x"}}]}]}"#,
                "messages[0].content[0].image_url",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
                "messages[0].content[0]",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}"#,
                "tool_choice",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"audio":{}}"#,
                "audio",
            ),
        ];
        for (body, param) in cases {
            let err = chat(body).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
        }
    }
}
