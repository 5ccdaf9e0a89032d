//! The APIs ferrite speaks besides OpenAI's, each in its own room that
//! translates to and from the one chat road (`chat/`) and imports nothing
//! from another room.
//! - `ollama/`: Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, ...).

pub mod ollama;
