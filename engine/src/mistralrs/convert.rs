//! OpenAI request fields -> mistral.rs request pieces.

use std::collections::HashMap;

use either::Either;
use ferrite_openapi::chat::{
    ChatMessage, ChatRequest, ContentPart, MessageContent as WireContent, ResponseFormat,
    ToolChoice as WireToolChoice, ToolChoiceMode, ToolDefinition,
};
use ferrite_openapi::{ApiError, ApiResult};
use indexmap::IndexMap;
use mistralrs::core::{Function, Tool, ToolChoice, ToolType};
use mistralrs::{Constraint, MessageContent};
use serde_json::{json, Value};

/// Chat messages as mistral.rs hands them to the model's chat template.
pub fn messages(msgs: &[ChatMessage]) -> Vec<IndexMap<String, MessageContent>> {
    messages_with(msgs, None)
}

/// The same, with `marker` where each image goes (llama-server's way: the
/// template sees text, the images are put in after).
pub fn messages_with(
    msgs: &[ChatMessage],
    marker: Option<&str>,
) -> Vec<IndexMap<String, MessageContent>> {
    msgs.iter().map(|m| message(m, marker)).collect()
}

fn message(m: &ChatMessage, marker: Option<&str>) -> IndexMap<String, MessageContent> {
    let mut map = IndexMap::new();
    map.insert(
        "role".to_string(),
        Either::Left(m.role.template_name().to_string()),
    );
    let text = match &m.content {
        None => String::new(),
        Some(WireContent::Text(t)) => t.clone(),
        Some(WireContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Refusal { refusal } => Some(refusal.as_str()),
                ContentPart::ImageUrl { .. } => marker,
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    map.insert("content".to_string(), Either::Left(text));
    if let Some(calls) = &m.tool_calls {
        let calls = calls
            .iter()
            .map(|c| {
                IndexMap::from([
                    ("id".to_string(), Value::String(c.id.clone())),
                    ("type".to_string(), Value::String("function".into())),
                    (
                        "function".to_string(),
                        json!({"name": c.function.name, "arguments": c.function.arguments}),
                    ),
                ])
            })
            .collect();
        map.insert("tool_calls".to_string(), Either::Right(calls));
    }
    if let Some(id) = &m.tool_call_id {
        map.insert("tool_call_id".to_string(), Either::Left(id.clone()));
    }
    if let Some(name) = &m.name {
        map.insert("name".to_string(), Either::Left(name.clone()));
    }
    map
}

/// A request's tools, if it has any.
pub fn request_tools(req: &ChatRequest) -> Option<Vec<Tool>> {
    req.tools.as_deref().map(tools).filter(|t| !t.is_empty())
}

pub fn tools(defs: &[ToolDefinition]) -> Vec<Tool> {
    defs.iter()
        .map(|d| Tool {
            tp: ToolType::Function,
            function: Function {
                name: d.function.name.clone(),
                description: d.function.description.clone(),
                parameters: d.function.parameters.as_ref().and_then(|p| {
                    p.as_object()
                        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }),
            },
        })
        .collect()
}

/// The JSON a model must emit to call `tool`, in the shape mistral.rs parses.
fn call_schema(tool: &ToolDefinition) -> Value {
    let params = tool
        .function
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object"}));
    json!({
        "type": "object",
        "properties": {
            "name": {"const": tool.function.name},
            "arguments": params,
        },
        "required": ["name", "arguments"],
        "additionalProperties": false,
    })
}

/// Tool choice for mistral.rs plus, when a call is mandatory, a grammar that
/// forces one: mistral.rs only detects calls, it does not enforce them.
/// mistral.rs's own `ToolChoice::Tool` is never used: it fails the whole
/// batch step whenever a partial output does not parse as a call yet.
pub fn tool_choice(req: &ChatRequest) -> (Option<ToolChoice>, Option<Value>) {
    let defs = req.tools.as_deref().unwrap_or_default();
    if defs.is_empty() {
        return (None, None);
    }
    match &req.tool_choice {
        None | Some(WireToolChoice::Mode(ToolChoiceMode::Auto)) => (Some(ToolChoice::Auto), None),
        Some(WireToolChoice::Mode(ToolChoiceMode::None)) => (Some(ToolChoice::None), None),
        Some(WireToolChoice::Mode(ToolChoiceMode::Required)) => {
            let any: Vec<Value> = defs.iter().map(call_schema).collect();
            (Some(ToolChoice::Auto), Some(json!({"anyOf": any})))
        }
        Some(WireToolChoice::Named(named)) => {
            let def = defs.iter().find(|d| d.function.name == named.function.name);
            (Some(ToolChoice::Auto), def.map(call_schema))
        }
    }
}

/// `response_format` and forced tool calls as one grammar constraint.
pub fn constraint(
    format: Option<&ResponseFormat>,
    forced_tool: Option<Value>,
) -> ApiResult<Constraint> {
    let from_format = match format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => json_schema.schema.clone(),
    };
    match (from_format, forced_tool) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "response_format",
            "A JSON `response_format` cannot be combined with a forced `tool_choice`.",
        )),
        (Some(schema), None) | (None, Some(schema)) => Ok(Constraint::JsonSchema(schema)),
        (None, None) => Ok(Constraint::None),
    }
}

/// llguidance lets JSON whitespace run on without end, and a small model
/// sampling at temperature 1 can spend its whole budget there; bound it as
/// llama.cpp's schema grammars do (a space, or one or two newlines and up to
/// 20 indents). A schema's own `x-guidance` options win.
pub fn bounded_whitespace(constraint: Constraint) -> Constraint {
    match constraint {
        Constraint::JsonSchema(mut schema) => {
            if let Some(obj) = schema.as_object_mut() {
                obj.entry("x-guidance")
                    .or_insert_with(|| json!({"whitespace_pattern": r"[ ]|\n{1,2}[ \t]{0,20}"}));
            }
            Constraint::JsonSchema(schema)
        }
        other => other,
    }
}

/// Parses `logit_bias` keys (validated as ids earlier) and bounds them by the vocabulary.
pub fn logit_bias(
    bias: Option<&std::collections::BTreeMap<String, f32>>,
    vocab_size: Option<u32>,
) -> ApiResult<Option<HashMap<u32, f32>>> {
    let Some(bias) = bias.filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    let mut out = HashMap::with_capacity(bias.len());
    for (k, &v) in bias {
        let id: u32 = k
            .parse()
            .map_err(|_| ApiError::invalid("logit_bias", format!("`{k}` is not a token id.")))?;
        if vocab_size.is_some_and(|n| id >= n) {
            return Err(ApiError::invalid(
                "logit_bias",
                format!(
                    "Token id {id} is outside the model's vocabulary of {} tokens.",
                    vocab_size.unwrap_or_default()
                ),
            ));
        }
        out.insert(id, v);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_openapi::parse::parse_json;

    #[test]
    fn named_tool_choice_forces_a_call_grammar() {
        let req: ChatRequest = parse_json(
            br#"{"messages":[{"role":"user","content":"x"}],
                "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
                "tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#,
        )
        .unwrap();
        let (choice, grammar) = tool_choice(&req);
        assert!(matches!(choice, Some(ToolChoice::Auto)));
        let g = grammar.unwrap();
        assert_eq!(g["properties"]["name"]["const"], "get_weather");
        assert!(constraint(Some(&ResponseFormat::JsonObject), Some(g.clone())).is_err());
        let Constraint::JsonSchema(bounded) = bounded_whitespace(Constraint::JsonSchema(g)) else {
            panic!("still a schema");
        };
        assert!(bounded["x-guidance"]["whitespace_pattern"].is_string());
    }

    #[test]
    fn multi_part_text_is_joined() {
        let req: ChatRequest = parse_json(
            br#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
        )
        .unwrap();
        let m = messages(&req.messages);
        assert_eq!(m[0]["role"], Either::Left("system".to_string()));
        assert_eq!(m[0]["content"], Either::Left("a\nb".to_string()));
    }

    #[test]
    fn logit_bias_is_bounded_by_vocab() {
        let b = std::collections::BTreeMap::from([("70000".to_string(), 1.0)]);
        assert!(logit_bias(Some(&b), Some(49152)).is_err());
        let b = std::collections::BTreeMap::from([("7".to_string(), 1.0)]);
        assert_eq!(logit_bias(Some(&b), Some(49152)).unwrap().unwrap()[&7], 1.0);
    }
}
