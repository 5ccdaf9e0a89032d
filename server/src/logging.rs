//! tracing setup: human-readable on a terminal, JSON lines on request.

use tracing_subscriber::EnvFilter;

use crate::config::LogOptions;

pub fn init(opts: &LogOptions) -> anyhow::Result<()> {
    // RUST_LOG, when set, wins over the configured filter.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&opts.filter))
        .map_err(|e| anyhow::anyhow!("invalid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match opts.format.as_str() {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .try_init(),
        "text" => builder.try_init(),
        other => anyhow::bail!("unknown log format `{other}` (text or json)"),
    };
    result.map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))
}
