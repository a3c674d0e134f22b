//! The documentation's examples, run: every ```` ```console ```` block of
//! README.md and docs/*.md, against a `ratelimitd serve` started as the
//! Quickstart starts it (from the repository root, without `--config`: the
//! example policy and its Envoy files). An example that drifts from what the
//! service does fails here.
//!
//! A block holds commands (`$ ...`, continued with a trailing `\`), each
//! followed by its expected output (stdout and stderr together); `? N` right
//! after a command expects exit status N (0 otherwise). Outputs are matched
//! with snapbox: `[..]` stands for any text within a line, a `...` line for
//! any lines. Commands run in `sh` from the repository root with the built
//! `ratelimitd` first on `PATH` and `RATELIMITD_ADDR` naming the test
//! service; `localhost:8081` and `localhost:8080` in a command are the test
//! service's gRPC and HTTP addresses. Each file gets a fresh service, and
//! its blocks run in order.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{ServeProcess, BINARY};

/// One command of a block and what it must print.
#[derive(Debug)]
struct Example {
    /// `file:line`, for failures.
    at: String,
    command: String,
    status: i32,
    output: String,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The examples of one Markdown file, in order.
fn examples(file: &Path, text: &str) -> Vec<Example> {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let mut examples = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        if line.trim_end() != "```console" {
            continue;
        }
        let mut current: Option<Example> = None;
        while let Some((number, line)) = lines.next() {
            if line.starts_with("```") {
                break;
            }
            if let Some(command) = line.strip_prefix("$ ") {
                examples.extend(current.take());
                let mut command = command.to_string();
                while command.ends_with('\\') {
                    command.pop();
                    let (_, next) = lines.next().expect("a continued command goes on");
                    command.push_str(next.trim_start());
                }
                let status = match lines.peek() {
                    Some((_, next)) if next.starts_with("? ") => {
                        let status = next[2..].trim().parse().expect("`? N` is a number");
                        lines.next();
                        status
                    }
                    _ => 0,
                };
                current = Some(Example {
                    at: format!("{name}:{}", number + 1),
                    command,
                    status,
                    output: String::new(),
                });
            } else {
                let example = current.as_mut().unwrap_or_else(|| {
                    panic!("{name}:{}: output before any `$` command", number + 1)
                });
                example.output.push_str(line);
                example.output.push('\n');
            }
        }
        examples.extend(current);
    }
    examples
}

/// Runs every example of `file` against a fresh service.
fn run_file(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let examples = examples(file, &text);
    if examples.is_empty() {
        return;
    }
    let root = repository();
    let service = ServeProcess::spawn_in(&root, &[], &[]);
    let binary_dir = Path::new(BINARY).parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for example in examples {
        let command = example
            .command
            .replace("localhost:8081", &service.addr)
            .replace("localhost:8080", &service.http_addr);
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{{ {command}\n}} 2>&1"))
            .current_dir(&root)
            .env("PATH", &path)
            .env("RATELIMITD_ADDR", &service.addr)
            .env_remove("RATELIMITD_CONFIG")
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(example.status),
            "{}: `{}` exited {:?}, printing:\n{printed}",
            example.at,
            example.command,
            output.status.code()
        );
        // Whether the last line ends in a newline is not shown in a block.
        let (printed, expected) = (
            printed.trim_end_matches('\n'),
            example.output.trim_end_matches('\n'),
        );
        if let Err(error) = snapbox::Assert::new().normalize_paths(false).try_eq(
            Some(&example.at),
            printed.to_string().into(),
            expected.to_string().into(),
        ) {
            panic!(
                "{}: `{}` printed something else:\n{error}",
                example.at, example.command
            );
        }
    }
}

#[test]
fn the_readme_examples_are_true() {
    run_file(&repository().join("README.md"));
}

#[test]
fn the_docs_examples_are_true() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repository().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for file in files {
        run_file(&file);
    }
}

/// The harness itself: commands, continuations, statuses and outputs.
#[test]
fn blocks_are_read_as_commands_statuses_and_outputs() {
    let text = "text\n```console\n$ one \\\n  two\nout 1\n$ three\n? 3\nout 2\nout 3\n```\n```sh\n$ not run\n```\n";
    let found = examples(Path::new("x.md"), text);
    let shown: Vec<(&str, &str, i32, &str)> = found
        .iter()
        .map(|e| {
            (
                e.at.as_str(),
                e.command.as_str(),
                e.status,
                e.output.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("x.md:3", "one two", 0, "out 1\n"),
            ("x.md:6", "three", 3, "out 2\nout 3\n"),
        ]
    );
}
