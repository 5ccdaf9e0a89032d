//! What both runtimes do to a request before it runs: completion budgets
//! against the context, thinking plans, sampling fields, structured output.

use async_trait::async_trait;
use ferrite_openapi::chat::{
    ChatRequest, ContentPart, MessageContent, ResponseFormat, ToolChoice, ToolChoiceMode,
};
use ferrite_openapi::completions::CompletionRequest;
use ferrite_openapi::thinking::ThinkingOptions;
use ferrite_openapi::{ApiError, ApiResult};

use crate::options::Delimiters;
use crate::stream::Structured;
use crate::thinking::Plan;
use crate::vocab::Vocab;

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A runtime's tokenizer, for text ferrite splices into a sequence.
#[async_trait]
pub trait Tokenize: Sync {
    /// Tokens of `text` without special tokens (no BOS).
    async fn piece(&self, text: &str) -> ApiResult<Vec<u32>>;
}

/// 400 before tokenizing when `text` is too long for any tokenization of
/// it to fit in `ctx` tokens: no token stands for more than `longest` bytes
/// (twice that, for tokenizers that normalize). A 16 MiB prompt is refused
/// at once instead of being tokenized first.
pub fn surely_too_long(text: &str, ctx: usize, longest: usize) -> ApiResult<()> {
    too_many_bytes(text.len(), ctx, longest)
}

/// The same for a chat not rendered yet, from its messages' text (trimmed,
/// as templates often do): a template adds to it, it does not drop it.
pub fn chat_surely_too_long(req: &ChatRequest, ctx: usize, longest: usize) -> ApiResult<()> {
    let bytes = req
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| match c {
            MessageContent::Text(t) => t.trim().len(),
            MessageContent::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.trim().len(),
                    _ => 0,
                })
                .sum(),
        })
        .fold(0usize, usize::saturating_add);
    too_many_bytes(bytes, ctx, longest)
}

fn too_many_bytes(bytes: usize, ctx: usize, longest: usize) -> ApiResult<()> {
    let most = ctx.saturating_mul(longest).saturating_mul(2);
    if bytes <= most {
        return Ok(());
    }
    Err(ApiError::context_length_exceeded(format!(
        "This model's maximum context length is {ctx} tokens, but the prompt is {bytes} bytes, more than {ctx} tokens can hold. Please shorten the prompt."
    ))
    .with_param("messages"))
}

/// Completion tokens left after the prompt, checked against the request's
/// limit (`param` names it) and the server's cap.
pub fn budget(
    ctx: usize,
    cap: Option<usize>,
    prompt: usize,
    limit: Option<u32>,
    param: &str,
) -> ApiResult<usize> {
    if prompt >= ctx {
        return Err(ApiError::context_length_exceeded(format!(
            "This model's maximum context length is {ctx} tokens, but the prompt has {prompt} tokens. Please shorten the prompt."
        ))
        .with_param(param_for_prompt(param)));
    }
    let cap = cap.unwrap_or(usize::MAX);
    match limit {
        None => Ok((ctx - prompt).min(cap)),
        Some(n) if prompt + n as usize <= ctx => Ok((n as usize).min(cap)),
        Some(n) => Err(ApiError::context_length_exceeded(format!(
            "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({prompt} in the prompt, {n} for the completion). Please reduce the prompt or `{param}`.",
            prompt + n as usize
        ))
        .with_param(param)),
    }
}

/// A chat's completion limit; one that is only a cap
/// (`context.max_tokens_is_cap`) is cut to what the context leaves.
pub fn chat_limit(req: &ChatRequest, ctx: usize, prompt: usize) -> ApiResult<Option<u32>> {
    let limit = req.completion_limit()?;
    Ok(match limit {
        Some(n) if req.context.max_tokens_is_cap => {
            let left = u32::try_from(ctx.saturating_sub(prompt)).unwrap_or(u32::MAX);
            Some(n.min(left))
        }
        other => other,
    })
}

fn param_for_prompt(param: &str) -> &'static str {
    if param == "max_tokens" || param == "max_completion_tokens" {
        "messages"
    } else {
        "prompt"
    }
}

/// The chat field that limits the completion, for error messages.
pub fn limit_param(req: &ChatRequest) -> &'static str {
    if req.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

/// Token ids a client sent must exist in the vocabulary.
pub fn check_tokens(ids: &[u32], vocab_size: Option<u32>) -> ApiResult<()> {
    match vocab_size {
        Some(v) if ids.iter().any(|&t| t >= v) => Err(ApiError::invalid(
            "prompt",
            format!("Token ids must be below the vocabulary size {v}."),
        )),
        _ => Ok(()),
    }
}

/// `best_of` is only honoured as `n`.
pub fn check_best_of(req: &CompletionRequest) -> ApiResult<()> {
    if req.best_of.is_some_and(|b| b > req.n.unwrap_or(1)) {
        return Err(ApiError::unsupported(
            "best_of",
            "`best_of` greater than `n` is not supported.",
        ));
    }
    Ok(())
}

/// Sampling fields shared by both endpoints.
#[derive(Clone, Debug, Default)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub min_p: Option<f64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repeat_penalty: Option<f32>,
    /// Alternatives per token, when the client wants logprobs.
    pub top_logprobs: Option<u32>,
    pub seed: Option<i64>,
}

impl Sampling {
    pub fn chat(req: &ChatRequest) -> Self {
        Self {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            min_p: req.min_p,
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            repeat_penalty: req.repeat_penalty,
            top_logprobs: (req.logprobs == Some(true)).then(|| req.top_logprobs.unwrap_or(0)),
            seed: req.seed,
        }
    }

    pub fn completion(req: &CompletionRequest) -> Self {
        Self {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            min_p: req.min_p,
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            repeat_penalty: req.repeat_penalty,
            top_logprobs: req.logprobs,
            seed: req.seed,
        }
    }
}

/// How a chat answer is structured (see [`Structured`]); `runtime_calls`
/// when the runtime finds tool calls in free text itself.
pub fn structured(req: &ChatRequest, runtime_calls: bool) -> Structured {
    let json_format = matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    );
    let has_tools = req.tools.as_ref().is_some_and(|t| !t.is_empty());
    let forced = has_tools
        && matches!(
            req.tool_choice,
            Some(ToolChoice::Named(_) | ToolChoice::Mode(ToolChoiceMode::Required))
        );
    let none = matches!(
        req.tool_choice,
        Some(ToolChoice::Mode(ToolChoiceMode::None))
    );
    match () {
        _ if json_format => Structured::Json,
        _ if runtime_calls => Structured::Free,
        _ if forced => Structured::ToolCall,
        _ if has_tools && !none => Structured::ToolAuto,
        _ => Structured::Free,
    }
}

/// A thinking budget with its strings tokenized.
pub async fn plan_thinking(
    t: &ThinkingOptions,
    delimiters: &Delimiters,
    vocab: Option<&Vocab>,
    tok: &impl Tokenize,
) -> ApiResult<Plan> {
    if vocab.is_none() {
        return Err(ApiError::unsupported(
            "thinking",
            "This model's tokenizer could not be read, so thinking budgets are unavailable.",
        ));
    }
    let close = &delimiters.close;
    let (after_newline, on_new_line) = (format!("\n{close}\n\n"), format!("{close}\n\n"));
    let wait_after_text = match t.wait() {
        w if w.starts_with(char::is_whitespace) => w.to_string(),
        w => format!(" {w}"),
    };
    let (wait, wait_after_text, after_newline, on_new_line) = tokio::try_join!(
        tok.piece(t.wait()),
        tok.piece(&wait_after_text),
        tok.piece(&after_newline),
        tok.piece(&on_new_line),
    )?;
    Ok(Plan {
        max: t.max_tokens,
        min: t.min_tokens.unwrap_or(0),
        max_waits: t.max_waits(),
        wait,
        wait_after_text,
        close_text: close.as_bytes().to_vec(),
        close_after_newline: after_newline,
        close_on_new_line: on_new_line,
    })
}

/// Opens the thinking block at the end of a rendered prompt, unless the
/// model's template already did.
pub async fn open_thinking(
    prompt: &mut Vec<u32>,
    open: &str,
    vocab: Option<&Vocab>,
    tok: &impl Tokenize,
) -> ApiResult<()> {
    let tail: Vec<u8> = match vocab {
        Some(v) => prompt[prompt.len().saturating_sub(8)..]
            .iter()
            .flat_map(|&t| v.bytes(t).to_vec())
            .collect(),
        None => Vec::new(),
    };
    if !tail.trim_ascii_end().ends_with(open.as_bytes()) {
        prompt.extend(tok.piece(&format!("{open}\n")).await?);
    }
    Ok(())
}
