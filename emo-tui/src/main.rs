//! `emo-tui --server URL`: see README.md for the screens and keys.

use std::io::stdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{Local, Utc};
use clap::Parser;
use emo_tui::api::Client;
use emo_tui::app::{App, Cmd, Msg};
use emo_tui::net::Net;
use emo_tui::{token, ui};
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyCode, KeyEventKind,
};
use ratatui::crossterm::execute;

#[derive(Parser, Debug)]
#[command(
    name = "emo-tui",
    version,
    about = "Terminal client for EMO agents and admins"
)]
struct Cli {
    /// Base URL of the emod server.
    #[arg(long, env = "EMO_SERVER", default_value = "http://127.0.0.1:7878")]
    server: String,
    /// Use this bearer token instead of the saved login (it is not saved). Prefer EMO_TOKEN or
    /// --token-file: a token on the command line is visible to every user in `ps`.
    #[arg(long, env = "EMO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from this file (first line), e.g. one only you can read.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    no_color: bool,
    /// Sources asked for when you start a session (comma-separated: camera, microphone, or
    /// remote). Default: whatever the daemon's `[capture]` configures.
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// Label for the sessions you start (shown in dashboards).
    #[arg(long)]
    label: Option<String>,
    /// Do not capture the mouse (keeps the terminal's own text selection).
    #[arg(long)]
    no_mouse: bool,
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_name = "SHELL", value_enum)]
    completions: Option<clap_complete::Shell>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        use clap::CommandFactory;
        clap_complete::generate(shell, &mut Cli::command(), "emo-tui", &mut stdout());
        return Ok(());
    }
    let color = !cli.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let server = emo_tui::api::normalize_server(&cli.server);
    let client = Client::new(&server).map_err(|e| anyhow::anyhow!(e.user_message()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let token_path = token::token_path();
    let mut net = Net::new(client, tx, rt.handle().clone(), token_path.clone());

    let now = Utc::now();
    let tz = *Local::now().offset();
    let mut app = App::new(&server, color, now, tz);
    app.sources = cli.sources.clone();
    app.label = cli.label.clone();
    let initial = first_commands(&cli, &mut app, token_path.as_deref(), now)?;
    for c in initial {
        net.dispatch(c);
    }

    let stop = Arc::new(AtomicBool::new(false));
    watch_hangup(&rt, stop.clone());

    let mut terminal = ratatui::init(); // raw mode + alternate screen + a panic hook that restores
    if !cli.no_mouse {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(stdout(), DisableMouseCapture);
            prev(info);
        }));
        let _ = execute!(stdout(), EnableMouseCapture);
    }
    let result = run(&mut terminal, &mut app, &mut net, &mut rx, &stop);
    if !cli.no_mouse {
        let _ = execute!(stdout(), DisableMouseCapture);
    }
    ratatui::restore();
    drop(net);
    rt.shutdown_timeout(Duration::from_millis(200));
    if app.agent.running.is_some() {
        eprintln!("emo-tui: your session is still recording in emod; run emo-tui again and press x to stop it.");
    }
    result
}

fn run(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    net: &mut Net,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    loop {
        app.now = Utc::now();
        let mut hits = app.hits.clone();
        terminal.draw(|f| hits = ui::draw(f, app))?;
        app.hits = hits;
        let mut cmds = Vec::new();
        if event::poll(Duration::from_millis(100))? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    // The time the key is handled (the consent prompt's type-ahead guard).
                    app.now = Utc::now();
                    test_panic_hook(k.code);
                    cmds.extend(app.on_key(k))
                }
                Event::Mouse(m) => cmds.extend(app.on_mouse(m)),
                _ => {} // resize: the next draw adapts
            }
        }
        while let Ok(msg) = rx.try_recv() {
            cmds.extend(app.on_msg(msg));
        }
        for c in cmds {
            net.dispatch(c);
        }
        app.tick = app.tick.wrapping_add(1);
        if app.should_quit || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// Lets the end-to-end test prove the terminal is restored after a panic: F12 panics when
/// `EMO_TUI_TEST_PANIC` is set. Compiled only into debug builds (what `cargo test` runs), so a
/// release binary has no key that crashes it on purpose; `tui_tmux` checks both.
#[cfg(debug_assertions)]
fn test_panic_hook(code: KeyCode) {
    if code == KeyCode::F(12) && std::env::var_os("EMO_TUI_TEST_PANIC").is_some() {
        panic!("test panic requested with F12 (EMO_TUI_TEST_PANIC is set)");
    }
}

#[cfg(not(debug_assertions))]
fn test_panic_hook(_: KeyCode) {}

/// What to do first: a token from `--token-file`, `--token` or `EMO_TOKEN` is checked as is;
/// else the saved login for this server, if still valid; else the login screen.
fn first_commands(
    cli: &Cli,
    app: &mut App,
    token_path: Option<&std::path::Path>,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<Cmd>> {
    let saved = token_path.and_then(token::load);
    let file_token = match &cli.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the token file {}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let initial = if let Some(t) = file_token.or(cli.token.clone()).filter(|t| !t.is_empty()) {
        app.resume(t)
    } else {
        match saved {
            Some(s) if s.valid_for(&app.server, now) => {
                app.login.username.value = s.username.clone();
                app.resume(s.token)
            }
            Some(s) if s.server.trim_end_matches('/') == app.server => {
                app.login.username.value = s.username;
                app.login.focus = 1;
                let c = app.start_at_login();
                app.error("Your saved login has expired. Please log in again.");
                c
            }
            _ => app.start_at_login(),
        }
    };
    Ok(initial)
}

/// SIGTERM / SIGHUP (e.g. the SSH connection dropped): leave cleanly, restoring the terminal.
fn watch_hangup(rt: &tokio::runtime::Runtime, stop: Arc<AtomicBool>) {
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = hup.recv() => 129,
        };
        stop.store(true, Ordering::SeqCst);
        // After a hang-up the terminal reads end-of-file forever and crossterm's poll never
        // returns to the loop that checks `stop`: exit from here if the loop has not within
        // a moment, instead of spinning on a dead terminal.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        std::process::exit(code);
    });
}
