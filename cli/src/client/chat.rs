//! `ferrite chat [MODEL]`: an interactive terminal chat that streams the
//! answers, against a running server. Lines from a pipe work too, one
//! message each. `/clear` forgets the conversation, `/exit` leaves.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::remote::{Client, Remote};

#[derive(Args)]
pub struct ChatArgs {
    /// Model id, alias or router (default: the loaded model).
    pub model: Option<String>,
    /// A system prompt for the conversation.
    #[arg(long, short)]
    pub system: Option<String>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
    #[arg(long)]
    pub temperature: Option<f64>,
    #[command(flatten)]
    pub remote: Remote,
}

pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.remote);
    let interactive = std::io::stdin().is_terminal();
    let mut history: Vec<Value> = Vec::new();
    if let Some(system) = &args.system {
        history.push(json!({"role": "system", "content": system}));
    }
    if interactive {
        let model = args.model.as_deref().unwrap_or("the loaded model");
        println!(
            "Chatting with {model} at {}. /clear forgets, /exit leaves.",
            client.base()
        );
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                history.retain(|m| m["role"] == "system");
                continue;
            }
            _ => {}
        }
        history.push(json!({"role": "user", "content": line}));
        match answer(&client, &args, &history).await {
            Ok(reply) => history.push(json!({"role": "assistant", "content": reply})),
            Err(e) => {
                history.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}

/// Streams one answer to stdout and returns it.
async fn answer(client: &Client, args: &ChatArgs, history: &[Value]) -> anyhow::Result<String> {
    let mut body = json!({"messages": history, "stream": true});
    if let Some(m) = &args.model {
        body["model"] = json!(m);
    }
    if let Some(n) = args.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if let Some(t) = args.temperature {
        body["temperature"] = json!(t);
    }
    let mut events = client.events("/v1/chat/completions", &body).await?;
    let mut reply = String::new();
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(&event.data)?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            bail!("{message}");
        }
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            reply.push_str(text);
            write!(out, "{text}")?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    Ok(reply)
}
