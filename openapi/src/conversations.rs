//! `/v1/app/conversations`: the web app's conversations, kept on the server
//! per tenant so that they show in any browser. A conversation is a tree of
//! messages (each names its `parent`): an edit or a regeneration is a
//! branch beside the message it replaces, and `current` is the leaf shown.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedMessage {
    /// Unique within its conversation (the client makes it).
    pub id: String,
    /// The message this one answers or follows; none for a first message.
    #[serde(default)]
    pub parent: Option<String>,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    #[serde(default)]
    pub content: String,
    /// The model's reasoning, shown folded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The model that wrote it (assistant messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Attached images, as data URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Attached text files: their names and contents, sent as context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SavedFile>,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<SavedToolCall>,
    /// What the answer cost, as the app shows it (tokens per second, time to
    /// first token, tokens, stop reason): kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub stats: Option<Value>,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: i64,
}

/// A text file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedFile {
    pub name: String,
    pub text: String,
}

/// A tool call of an assistant message, as the chat API returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as the model wrote it.
    pub arguments: String,
}

/// What a client writes: a new conversation, or all of one it replaces.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationWrite {
    /// Up to 200 characters; empty becomes "New chat".
    #[serde(default)]
    pub title: String,
    /// The model picked for it.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The preset applied (sampling, context overflow, thinking): kept as sent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub messages: Vec<SavedMessage>,
    /// The leaf of the branch shown.
    #[serde(default)]
    pub current: Option<String>,
}

/// A conversation as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub id: String,
    /// Always `conversation`.
    pub object: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    pub title: String,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    pub messages: Vec<SavedMessage>,
    pub current: Option<String>,
}

/// A conversation in a list: no messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    /// Always `conversation`.
    pub object: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub title: String,
    pub model: Option<String>,
    pub message_count: u32,
}

/// The caller's conversations, most recently changed first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ConversationSummary>,
}

/// Every conversation of the caller's, as a file to keep or import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationExport {
    /// Always `ferrite.conversations`.
    pub object: String,
    /// The file's format: 1.
    pub version: u32,
    pub conversations: Vec<Conversation>,
}

/// `DELETE /v1/app/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationDeleted {
    pub id: String,
    /// Always `conversation.deleted`.
    pub object: String,
    pub deleted: bool,
}

impl Conversation {
    pub fn summary(&self) -> ConversationSummary {
        ConversationSummary {
            id: self.id.clone(),
            object: "conversation".into(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            title: self.title.clone(),
            model: self.model.clone(),
            message_count: u32::try_from(self.messages.len()).unwrap_or(u32::MAX),
        }
    }

    /// The words search looks in: the title and every message's text.
    pub fn text(&self) -> String {
        let mut text = self.title.clone();
        for m in &self.messages {
            text.push('\n');
            text.push_str(&m.content);
        }
        text
    }
}

/// Why a write cannot be kept, naming the field.
pub fn check(write: &ConversationWrite) -> Result<(), (String, String)> {
    const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];
    if write.title.chars().count() > 200 {
        return Err(("title".into(), "A title has at most 200 characters.".into()));
    }
    if write.messages.len() > 100_000 {
        return Err(("messages".into(), "At most 100000 messages.".into()));
    }
    if write.settings.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(("settings".into(), "`settings` is an object.".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in write.messages.iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        if m.id.trim().is_empty() || m.id.len() > 100 {
            return Err((at("id"), "An id is 1 to 100 characters.".into()));
        }
        if !ROLES.contains(&m.role.as_str()) {
            return Err((
                at("role"),
                format!(
                    "Unknown role `{}`: use system, user, assistant or tool.",
                    m.role
                ),
            ));
        }
        if m.stats.as_ref().is_some_and(|v| !v.is_object()) {
            return Err((at("stats"), "`stats` is an object.".into()));
        }
        if let Some(parent) = &m.parent {
            if !seen.contains(parent.as_str()) {
                return Err((
                    at("parent"),
                    format!("`{parent}` is no earlier message of this conversation."),
                ));
            }
        }
        if !seen.insert(m.id.as_str()) {
            return Err((at("id"), format!("`{}` is used twice.", m.id)));
        }
    }
    if let Some(current) = &write.current {
        if !seen.contains(current.as_str()) {
            return Err((
                "current".into(),
                format!("`{current}` is no message of this conversation."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, parent: Option<&str>) -> SavedMessage {
        SavedMessage {
            id: id.into(),
            parent: parent.map(Into::into),
            role: "user".into(),
            content: "hi".into(),
            thinking: None,
            model: None,
            images: Vec::new(),
            files: Vec::new(),
            tool_calls: Vec::new(),
            stats: None,
            created_at: 0,
        }
    }

    #[test]
    fn a_tree_of_earlier_parents_is_kept_and_anything_else_is_named() {
        let mut w = ConversationWrite {
            messages: vec![
                message("a", None),
                message("b", Some("a")),
                message("c", Some("a")),
            ],
            current: Some("c".into()),
            ..Default::default()
        };
        assert_eq!(check(&w), Ok(()));
        w.messages.push(message("d", Some("z")));
        assert_eq!(check(&w).unwrap_err().0, "messages[3].parent");
        w.messages[3] = message("a", None);
        assert_eq!(check(&w).unwrap_err().0, "messages[3].id");
        w.messages.pop();
        w.current = Some("nope".into());
        assert_eq!(check(&w).unwrap_err().0, "current");
    }
}
