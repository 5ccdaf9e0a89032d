//! The `lms`-like commands, run as a user runs them, against a real server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use ferrite_tests::{binary, config_file, free_port, model, model_q8, Server};

fn ferrite(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("FERRITE_API_KEY")
        .env_remove("FERRITE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferrite");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: &str) -> String {
    let out = ferrite(args, stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ferrite {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test]
async fn ls_ps_load_unload_and_chat_talk_to_the_running_server() {
    let cfg = config_file(
        "cli",
        &format!(
            "[registry]\nmax_loaded_models = 2\n[[registry.models]]\nid = \"smol-q8\"\npath = \"{}\"\n",
            model_q8().display()
        ),
    );
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    let url = server.base.clone();
    let at = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--url".to_string(), url.clone()]);
        v
    };
    let run = |args: &[&str], stdin: &str| {
        let args = at(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args, stdin)
    };

    let ls = run(&["ls"], "");
    assert!(
        ls.contains("smollm2-135m-instruct") && ls.contains("smol-q8"),
        "{ls}"
    );
    assert!(ls.contains("Q8_0") && ls.contains("not loaded"), "{ls}");

    let ps = run(&["ps"], "");
    assert!(
        ps.contains("smollm2-135m-instruct") && !ps.contains("smol-q8"),
        "{ps}"
    );

    let load = run(
        &[
            "load",
            "smol-q8",
            "--ttl",
            "600",
            "--context-length",
            "2048",
        ],
        "",
    );
    assert!(
        load.contains("Loaded smol-q8 with a context of 2048 tokens in"),
        "{load}"
    );
    let ps = run(&["ps"], "");
    let line = ps.lines().find(|l| l.starts_with("smol-q8")).expect(&ps);
    assert!(line.contains("145 MB") && line.contains("left"), "{ps}");
    let json = run(&["ps", "--json"], "");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 2);
    let q8 = parsed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "smol-q8")
        .expect(&json);
    assert_eq!(q8["loaded_instances"][0]["config"]["context_length"], 2048);

    // Two turns streamed to stdout, then /exit.
    let chat = run(
        &["chat", "smol-q8", "--max-tokens", "5", "--temperature", "0"],
        "Hello!\nAnd again?\n/exit\nnot sent\n",
    );
    let answers: Vec<&str> = chat.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(answers.len(), 2, "{chat}");

    let unload = run(&["unload", "smol-q8"], "");
    assert_eq!(unload.trim(), "Unloaded smol-q8.");
    let unload = run(&["unload", "--all"], "");
    assert_eq!(unload.trim(), "Unloaded smollm2-135m-instruct.");
    assert_eq!(run(&["ps"], "").trim(), "No models are loaded.");

    // Errors are the server's, said plainly, with a failing exit code.
    let out = ferrite(
        &at(&["load", "nope"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("The model `nope` does not exist"), "{err}");
    let out = ferrite(&["ls", "--url", "http://127.0.0.1:9"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server answers"));
}

#[tokio::test]
async fn server_start_status_and_stop_run_a_background_server() {
    let data = std::env::temp_dir().join(format!("ferrite-cli-data-{}", std::process::id()));
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let model = model();
    let env = |cmd: &mut Command| {
        cmd.env("XDG_DATA_HOME", &data)
            .env("FERRITE_REGISTRY__SCAN", "false")
            .env_remove("FERRITE_API_KEY")
            .env_remove("FERRITE_CONFIG");
    };
    let run = |args: &[&str]| {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        env(&mut cmd);
        cmd.output().unwrap()
    };
    let start = [
        "server",
        "start",
        "--model",
        model.to_str().unwrap(),
        "--port",
        &port,
    ];
    let out = run(&start);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid_file = data.join(format!("ferrite/server-{port}.pid"));
    assert!(pid_file.exists());

    let status = run(&["server", "status", "--url", &url]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert!(
        text.contains("is running") && text.contains("(ready)"),
        "{text}"
    );
    assert!(text.contains("smollm2-135m-instruct loaded"), "{text}");

    let again = run(&start);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already answers"));

    let stop = run(&["server", "stop", "--url", &url]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(String::from_utf8_lossy(&stop.stdout).contains("Stopped"));
    assert!(!pid_file.exists());
    let status = run(&["server", "status", "--url", &url]);
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("No server is running"));
    let _ = std::fs::remove_dir_all(&data);
}
